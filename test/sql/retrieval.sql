-- Retrieval (docs/retrieval.md): ecom_query_vector, the vector a vector
-- index searches, and ranking from stored embeddings (ecom_rank_emb,
-- ecom_serve_emb). With pgvector itself: test/t/011_pgvector.sh.
-- Bad input of all three: bad_input.sql.
CREATE TEMP TABLE rv_items AS
SELECT n::int AS n, t AS title, ecom_embed(t) AS e
  FROM unnest(ARRAY['merino wool scarf', 'leather hiking boots', 'linen summer shirt',
                    'denim jacket', 'cotton baseball cap', 'rain poncho']) WITH ORDINALITY u(t, n);
-- a global head whose text weights learned something (shoppers buy what
-- matches what they viewed) and item effects (some SKUs sell everywhere,
-- which their text cannot say), and a tenant adapted from it (wool sells)
CREATE TEMP TABLE rv_events AS
SELECT 'shop' || (g % 4) AS tenant, 'viewed: ' || c AS context, i AS item, b AS behaviour,
       (split_part(c, ' ', 1) = split_part(i, ' ', 1)) <> (g % 9 = 0) AS label
  FROM generate_series(1, 2) g,
       unnest(ARRAY['wool socks', 'leather belt', 'linen trousers', 'denim skirt', 'cotton shirt']) c,
       unnest(ARRAY['wool beanie', 'leather boots', 'linen dress', 'denim cap', 'cotton scarf', 'rain coat']) i,
       unnest(ARRAY['click', 'purchase']) b
UNION ALL
SELECT 'shop' || s, 'viewed: ' || (ARRAY['wool socks', 'leather belt', 'linen trousers'])[1 + r % 3],
       'sku ' || (1000 + i), 'click',
       (abs(hashtext(s || '/' || i || '/' || r)) % 100) < (abs(hashtext('pop' || i)) % 60 + 5)
  FROM generate_series(0, 11) s, generate_series(0, 59) i, generate_series(0, 4) r;
SELECT (ecom_meta_train('rv_events', meta_steps => 10)->>'version')::int > 0 AS trained;
CREATE TEMP TABLE rv_support AS
SELECT 'viewed: ' || c AS context, i AS item, 'click'::text AS behaviour, (i LIKE '%wool%') AS label
  FROM unnest(ARRAY['winter coat', 'hat', 'mittens', 'boots']) c,
       unnest(ARRAY['merino wool scarf', 'wool socks', 'linen summer shirt', 'cotton baseball cap', 'rain poncho', 'wool beanie']) i;
SELECT (ecom_adapt('rv_taste', 'rv_support')->>'version')::int AS adapted;
-- q·v plus the item's learned effect is each item's logit up to one
-- constant for all of them (the head has no side features): the spread of
-- logit − q·v − effect over the items is float rounding, while the logits
-- differ. For the global head and for the adapted tenant (which learned
-- effects of its own for these items from its support set).
SELECT tenant IS NULL AS global, max(rest) - min(rest) < 1e-4 AS q_gives_the_logit,
       max(logit) - min(logit) > 0.01 AS logits_differ, count(*) AS items,
       count(*) FILTER (WHERE effect <> 0) > 0 AS with_effects
  FROM (SELECT t.tenant, ln(p / (1 - p)) AS logit, coalesce(fx.effect, 0) AS effect,
               ln(p / (1 - p)) - (SELECT sum(a * b) FROM unnest(q, r.e) x(a, b)) - coalesce(fx.effect, 0) AS rest
          FROM (VALUES (NULL::text), ('rv_taste')) t(tenant),
               LATERAL (SELECT ecom_query_vector(t.tenant, 'viewed: winter coat', 'click') AS q) qq,
               rv_items r
               LEFT JOIN LATERAL (SELECT e.effect FROM ecom_item_effects(t.tenant) e
                                   WHERE e.item_key = ecom_item_key(r.title) AND e.behaviour = 'click') fx ON true,
               LATERAL (SELECT ecom_predict(t.tenant, 'viewed: winter coat', r.title, 'click') AS p) pp) s
 GROUP BY 1 ORDER BY 1;
-- the tenant's head and the context move q; NULL context: NULL
SELECT array_length(ecom_query_vector(NULL, 'x'), 1) AS dims,
       ecom_query_vector(NULL, 'x', 'click') <> ecom_query_vector('rv_taste', 'x', 'click') AS tenant_moves_q,
       ecom_query_vector(NULL, 'viewed: wool socks') <> ecom_query_vector(NULL, 'viewed: denim skirt') AS context_moves_q,
       ecom_query_vector(NULL, NULL) IS NULL AS null_context;
-- the best sellers, which a vector index cannot see: ecom_item_effects'
-- largest effects of the behaviour, largest first (ties by key)
SELECT (SELECT array_agg(t.item_key ORDER BY t.ord) FROM ecom_top_items(NULL, 'click', 3) WITH ORDINALITY t(item_key, effect, ord))
     = (SELECT array_agg(item_key) FROM (SELECT item_key FROM ecom_item_effects(NULL)
                                          WHERE behaviour = 'click' ORDER BY effect DESC, item_key LIMIT 3) e) AS top_are_the_largest,
       (SELECT count(*) FROM ecom_top_items(NULL, 'click', 1000))
     = (SELECT count(*) FROM ecom_item_effects(NULL) WHERE behaviour = 'click') AS beyond_all_gives_all,
       (SELECT max(effect) FROM ecom_top_items(NULL, 'click', 3)) > 0 AS something_sells,
       (SELECT count(*) FROM ecom_top_items(NULL, 'click', 0)) AS zero;
-- with the encoder's embeddings, ecom_rank_emb is ecom_rank: same items,
-- scores, ranks; and under Thompson the same draws from the same seed
SELECT (SELECT array_agg(format('%s %s %s %s', item_index, item, round(score::numeric, 12), rank) ORDER BY rank)
          FROM ecom_rank_emb('rv_taste', 'viewed: winter coat', ARRAY(SELECT title FROM rv_items ORDER BY n),
                             ARRAY(SELECT e FROM rv_items ORDER BY n), 4, 'click'))
     = (SELECT array_agg(format('%s %s %s %s', item_index, item, round(score::numeric, 12), rank) ORDER BY rank)
          FROM ecom_rank('rv_taste', 'viewed: winter coat', ARRAY(SELECT title FROM rv_items ORDER BY n), 4, 'click')) AS greedy_same,
       (SELECT array_agg(format('%s %s', item, round(propensity::numeric, 9)) ORDER BY rank)
          FROM ecom_rank_emb('rv_taste', 'viewed: winter coat', ARRAY(SELECT title FROM rv_items ORDER BY n),
                             ARRAY(SELECT e FROM rv_items ORDER BY n), 3, 'click', NULL, 'thompson', 11))
     = (SELECT array_agg(format('%s %s', item, round(propensity::numeric, 9)) ORDER BY rank)
          FROM ecom_rank('rv_taste', 'viewed: winter coat', ARRAY(SELECT title FROM rv_items ORDER BY n), 3, 'click', NULL, 'thompson', 11)) AS thompson_same;
-- the row of a NULL item is ignored, as the item is; a 2-D array or a flat one
SELECT item_index, item, rank
  FROM ecom_rank_emb(NULL, 'viewed: winter coat', ARRAY['denim jacket', NULL, 'rain poncho'],
                     ARRAY[ecom_embed('denim jacket'), array_fill(0::real, ARRAY[384]), ecom_embed('rain poncho')], 3)
 ORDER BY item_index;
SELECT count(*) AS flat_rows
  FROM ecom_rank_emb(NULL, 'viewed: winter coat', ARRAY['denim jacket', 'rain poncho'],
                     ecom_embed('denim jacket') || ecom_embed('rain poncho'), 3);
-- embeddings that went through other storage (rounded to 3 decimals, as
-- a coarse copy would) are accepted while unit length to 5e-3, and rank
-- the six items in ecom_rank's order; a scaled copy is refused (below)
SELECT (SELECT array_agg(item ORDER BY rank)
          FROM ecom_rank_emb(NULL, 'viewed: winter coat', ARRAY(SELECT title FROM rv_items ORDER BY n),
                             ARRAY(SELECT ARRAY(SELECT round(x::numeric, 3)::real FROM unnest(e) WITH ORDINALITY u(x, o) ORDER BY o)
                                     FROM rv_items ORDER BY n), 6, 'click'))
     = (SELECT array_agg(item ORDER BY rank)
          FROM ecom_rank(NULL, 'viewed: winter coat', ARRAY(SELECT title FROM rv_items ORDER BY n), 6, 'click')) AS rounded_rank_the_same;
-- ecom_serve_emb logs what ecom_serve logs: the request with its candidates
-- and one impression per shown item, which feedback and learning read
SELECT rank, item, impression_id > 0 AS logged
  FROM ecom_serve_emb('rv_shop', 'viewed: winter coat', ARRAY(SELECT title FROM rv_items ORDER BY n),
                      ARRAY(SELECT e FROM rv_items ORDER BY n), 2, 'click', NULL, 'none')
 ORDER BY rank;
SELECT cardinality(items) AS candidates, k, explore FROM ecom.requests WHERE tenant = 'rv_shop';
SELECT count(*) AS impressions, count(DISTINCT request_id) AS requests FROM ecom.impressions WHERE tenant = 'rv_shop';
SELECT ecom_feedback(min(id), 'click') FROM ecom.impressions WHERE tenant = 'rv_shop';
-- a refused call logs nothing
SELECT count(*) FROM ecom_serve_emb('rv_shop', 'c', ARRAY['a'], (SELECT array_agg((x * 2)::real) FROM unnest(ecom_embed('a')) x), 1);
SELECT count(*) AS requests_still FROM ecom.requests WHERE tenant = 'rv_shop';
SELECT ecom_forget(t)->>'impressions' AS forgotten_impressions FROM unnest(ARRAY['rv_shop', 'rv_taste']) t;
