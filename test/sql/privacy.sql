-- No row that one tenant can read names another tenant, and ecom_forget(t)
-- leaves no trace of t anywhere in schema ecom.
CREATE TABLE pv_events AS
SELECT 'pv_' || (ARRAY['acme', 'globex', 'initech', 'umbrella', 'hooli'])[1 + g % 5] AS tenant,
       'viewed: item ' || (g % 7) AS context, 'item ' || (g % 5) AS item,
       'purchase'::text AS behaviour, (g % 7) > (g % 5) AS label
  FROM generate_series(1, 300) g;
CREATE TABLE pv_acme_support AS SELECT context, item, behaviour, label FROM pv_events WHERE tenant = 'pv_acme';
-- the caller of ecom_meta_train learns which tenants validated the head…
SELECT jsonb_array_length(r->'val_tenants') AS val_tenants FROM ecom_meta_train('pv_events', meta_steps => 10) r;
-- …but the global head, readable by every tenant, stores counts only
SELECT metrics->'train_tenants' AS train_tenants, metrics->'val_tenants' AS val_tenants
  FROM ecom.heads WHERE tenant IS NULL AND active;
SELECT ecom_adapt('pv_acme', 'pv_acme_support') IS NOT NULL AS adapted;
-- what ecom_serve logged for acme, and the feedback on it, name acme too
SELECT count(*) AS shown FROM ecom_serve('pv_acme', 'viewed: item 1', ARRAY['item 0', 'item 1'], 2);
SELECT ecom_feedback(min(id), 'click') AS recorded FROM ecom.impressions WHERE tenant = 'pv_acme';
-- every text, name, array and jsonb value in schema ecom that mentions a
-- tenant, outside that tenant's own rows
CREATE FUNCTION pv_mentions(name text) RETURNS TABLE (tbl text, col text, n bigint) LANGUAGE plpgsql AS $$
DECLARE c record; k bigint;
BEGIN
  FOR c IN SELECT table_name, column_name FROM information_schema.columns
            WHERE table_schema = 'ecom' AND data_type IN ('text', 'name', 'jsonb', 'ARRAY', 'character varying')
              AND table_name IN (SELECT tablename FROM pg_tables WHERE schemaname = 'ecom')
            ORDER BY table_name, column_name LOOP
    EXECUTE format('SELECT count(*) FROM ecom.%I WHERE %I::text LIKE %L', c.table_name, c.column_name, '%' || name || '%')
       INTO k;
    IF k > 0 THEN tbl := c.table_name; col := c.column_name; n := k; RETURN NEXT; END IF;
  END LOOP;
END $$;
-- acme appears in acme's own rows only (tenant column, the support relation's name)
SELECT * FROM pv_mentions('pv_acme');
SELECT count(*) AS other_tenants_named FROM ecom.heads h, (SELECT DISTINCT tenant FROM pv_events) t
 WHERE h.tenant IS DISTINCT FROM t.tenant AND (h.hyper::text LIKE '%' || t.tenant || '%' OR h.metrics::text LIKE '%' || t.tenant || '%');
-- a global head stored by release 0.1.0 listed tenant names in its metrics
UPDATE ecom.heads SET metrics = metrics || '{"train_tenants": ["pv_globex", "pv_acme"], "val_tenants": ["pv_hooli"]}'
 WHERE tenant IS NULL AND active;
SELECT ecom_forget('pv_acme') AS deleted;
-- nothing of acme is left anywhere in schema ecom
SELECT * FROM pv_mentions('pv_acme');
SELECT count(*) AS acme_rows FROM ecom.heads WHERE tenant = 'pv_acme';
DROP FUNCTION pv_mentions(text);
DROP TABLE pv_events, pv_acme_support;
