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

-- Which distance operator orders `embedding_column` of `catalogue` through
-- an index: that of a valid, unconditional HNSW (else IVFFlat) index over
-- it, '<=>' when there is none (an exact scan). For unit item embeddings
-- the three operators give the same order to ecom_query_vector's q, so the
-- index decides only which one is fast.
CREATE FUNCTION ecom_catalogue_operator(catalogue regclass, embedding_column name DEFAULT 'embedding')
RETURNS text
LANGUAGE plpgsql STABLE STRICT PARALLEL SAFE
SET search_path FROM CURRENT
AS $$
DECLARE
  typ regtype;
  op text;
BEGIN
  SELECT a.atttypid::regtype INTO typ
    FROM pg_catalog.pg_attribute a
   WHERE a.attrelid = catalogue AND a.attname = embedding_column
     AND a.attnum > 0 AND NOT a.attisdropped;
  IF typ IS NULL THEN
    RAISE EXCEPTION 'column "%" of % does not exist', embedding_column, catalogue
      USING ERRCODE = 'undefined_column';
  END IF;
  IF typ <> 'vector'::regtype THEN
    RAISE EXCEPTION 'column "%" of % is %, not vector', embedding_column, catalogue, typ
      USING ERRCODE = 'datatype_mismatch',
            HINT = format('ALTER TABLE %s ALTER COLUMN %I TYPE vector USING %I::vector',
                          catalogue, embedding_column, embedding_column);
  END IF;
  SELECT CASE o.opcname WHEN 'vector_cosine_ops' THEN '<=>'
                        WHEN 'vector_ip_ops' THEN '<#>'
                        ELSE '<->' END
    INTO op
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
  RETURN coalesce(op, '<=>');
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
-- index finds nearest to `q`, best first, then the rows whose
-- ecom_item_key(item text) is in `item_keys` (best sellers the index
-- cannot see; through an index on ecom_item_key(item_column) where there
-- is one), each row once, with their embeddings and side features.
-- Why search wider than `candidates` and keep the best by q·v: a head's q
-- lies far from every item embedding (cosine 0.2 to the nearest, where a
-- shopper's context has 0.5), and an HNSW search for such a query finds
-- the true nearest only with a wide beam (benches/RESULTS.md: recall@100
-- 0.40 at ef_search 100, 0.96 at 1000, on 100,000 titles). NULL ef_search:
-- 10 x candidates, at least the session's hnsw.ef_search, at most 1000.
-- Rows whose text or embedding is NULL are not candidates.
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
LANGUAGE plpgsql VOLATILE PARALLEL SAFE COST 1000
SET search_path FROM CURRENT
AS $$
DECLARE
  op text := ecom_catalogue_operator(catalogue, embedding_column);
  uses_hnsw boolean;
  old_ef text;
  wide integer;
  null_features bigint;
  cols text;
  ann text;
BEGIN
  IF candidates IS NULL OR candidates < 1 THEN
    RAISE EXCEPTION 'candidates must be positive, got %', coalesce(candidates::text, 'NULL')
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF item_column IS NULL THEN
    RAISE EXCEPTION 'item_column must not be NULL' USING ERRCODE = 'null_value_not_allowed';
  END IF;
  IF ef_search < candidates THEN
    RAISE EXCEPTION 'ef_search (%) must be at least candidates (%)', ef_search, candidates
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  -- an HNSW scan returns at most hnsw.ef_search rows: set it for this
  -- query, and put the caller's value back afterwards
  SELECT EXISTS (
    SELECT 1 FROM pg_catalog.pg_index i
      JOIN pg_catalog.pg_class c ON c.oid = i.indexrelid
      JOIN pg_catalog.pg_am am ON am.oid = c.relam
      JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
     WHERE i.indrelid = catalogue AND a.attname = embedding_column AND am.amname = 'hnsw')
    INTO uses_hnsw;
  IF uses_hnsw AND greatest(candidates, ef_search) > 1000 THEN
    RAISE EXCEPTION 'candidates and ef_search must be at most 1000 over an HNSW index, got %', greatest(candidates, ef_search)
      USING ERRCODE = 'invalid_parameter_value',
            HINT = 'hnsw.ef_search, which bounds what one index scan returns, is at most 1000';
  END IF;
  old_ef := current_setting('hnsw.ef_search', true);
  wide := coalesce(ef_search,
                   greatest(candidates, least(1000, greatest(10 * candidates, coalesce(old_ef, '40')::integer))));
  IF uses_hnsw THEN
    PERFORM pg_catalog.set_config('hnsw.ef_search', wide::text, true);
  END IF;
  cols := format('ctid AS r, %1$I::text AS t, %2$I AS e, %3$s AS f', item_column, embedding_column,
                 CASE WHEN features_column IS NULL THEN 'NULL::real[]'
                      ELSE format('%I::real[]', features_column) END);
  ann := format('SELECT w.r, w.t, w.e, w.f, w.e <#> $1::vector AS d, 0 AS src
                   FROM (SELECT %1$s, %2$I %3$s $1::vector AS n FROM %4$s
                          WHERE %2$I IS NOT NULL AND %5$I IS NOT NULL ORDER BY n LIMIT $4) w
                  ORDER BY d LIMIT $2',
                cols, embedding_column, op, catalogue, item_column);
  EXECUTE format(
    'WITH ann AS (%1$s), c AS (SELECT * FROM ann %2$s)
     SELECT array_agg(c.t ORDER BY c.src, c.d), array_agg(c.e::real[] ORDER BY c.src, c.d),
            array_agg(c.f ORDER BY c.src, c.d) FILTER (WHERE c.f IS NOT NULL),
            count(*) FILTER (WHERE c.f IS NULL)
       FROM c',
    ann,
    CASE WHEN coalesce(cardinality(item_keys), 0) = 0 THEN ''
         ELSE format('UNION ALL SELECT %1$s, NULL::float8, 1 FROM %2$s b
                       WHERE ecom_item_key(%3$I) = ANY ($3) AND %4$I IS NOT NULL
                         AND b.ctid NOT IN (SELECT r FROM ann)',
                     cols, catalogue, item_column, embedding_column) END)
    INTO items, embeddings, features, null_features
    USING q, candidates, item_keys, wide;
  IF uses_hnsw AND old_ef IS NOT NULL THEN
    PERFORM pg_catalog.set_config('hnsw.ef_search', old_ef, true);
  END IF;
  IF features_column IS NOT NULL AND null_features > 0 THEN
    RAISE EXCEPTION 'column "%" of % is NULL for % of the candidates', features_column, catalogue, null_features
      USING ERRCODE = 'null_value_not_allowed',
            HINT = 'every candidate needs its side features; give the column a value, or filter the catalogue through a view';
  END IF;
END
$$;

-- How many best sellers ecom_recommend adds when the caller does not say:
-- as many as `candidates` where finding them by key is cheap (an index on
-- ecom_item_key(item_column), or a catalogue of at most 16 MB, about 10,000
-- items with 384-d embeddings), else none.
CREATE FUNCTION ecom_default_best_sellers(catalogue regclass, item_column name, candidates integer)
RETURNS integer
LANGUAGE sql STABLE PARALLEL SAFE
SET search_path FROM CURRENT
BEGIN ATOMIC
  SELECT CASE WHEN ecom_catalogue_has_key_index(catalogue, item_column)
                   OR pg_catalog.pg_relation_size(catalogue) <= 16 * 1024 * 1024
              THEN candidates ELSE 0 END;
END;

-- Two-stage ecom_rank: the `candidates` items of `catalogue` nearest to
-- the tenant's ecom_query_vector, ranked by the tenant's head from their
-- stored embeddings. Same arguments after `catalogue` as ecom_rank, and
-- the same rows but item_index.
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
LANGUAGE plpgsql VOLATILE PARALLEL SAFE COST 20000 ROWS 10
SET search_path FROM CURRENT
AS $$
DECLARE
  c record;
BEGIN
  IF catalogue IS NULL THEN
    RAISE EXCEPTION 'catalogue must not be NULL' USING ERRCODE = 'null_value_not_allowed';
  END IF;
  IF k IS NOT NULL AND candidates IS NOT NULL AND candidates < k THEN
    RAISE EXCEPTION 'candidates (%) must be at least k (%)', candidates, k
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF context IS NULL OR k IS NULL OR behaviour IS NULL OR explore IS NULL THEN
    RETURN;  -- as ecom_rank: nothing to rank
  END IF;
  IF best_sellers < 0 THEN
    RAISE EXCEPTION 'best_sellers must not be negative, got %', best_sellers
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  c := ecom_catalogue_candidates(
         catalogue, ecom_query_vector(tenant, context, behaviour), candidates,
         item_column, embedding_column, features_column,
         ARRAY(SELECT t.item_key FROM ecom_top_items(tenant, behaviour,
                 coalesce(best_sellers, ecom_default_best_sellers(catalogue, item_column, candidates))) t),
         ef_search);
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
  IF k IS NOT NULL AND candidates IS NOT NULL AND candidates < k THEN
    RAISE EXCEPTION 'candidates (%) must be at least k (%)', candidates, k
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF context IS NULL THEN
    RAISE EXCEPTION 'context must not be NULL' USING ERRCODE = 'null_value_not_allowed';
  END IF;
  IF best_sellers < 0 THEN
    RAISE EXCEPTION 'best_sellers must not be negative, got %', best_sellers
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  c := ecom_catalogue_candidates(
         catalogue, ecom_query_vector(tenant, context, behaviour), candidates,
         item_column, embedding_column, features_column,
         ARRAY(SELECT t.item_key FROM ecom_top_items(tenant, behaviour,
                 coalesce(best_sellers, ecom_default_best_sellers(catalogue, item_column, candidates))) t),
         ef_search);
  IF c.items IS NULL THEN
    RETURN;
  END IF;
  RETURN QUERY
    SELECT r.impression_id, r.item, r.score, r.rank, r.propensity, r.propensity_se
      FROM ecom_serve_emb(tenant, context, c.items, c.embeddings, k, behaviour,
                          c.features, explore, seed) AS r;
END
$$;
