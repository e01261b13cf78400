-- pg_ecom 0.3.0 -> 0.4.0: ALTER EXTENSION pg_ecom UPDATE
-- The loop's defects (README, "Closing the loop"): versions that served are
-- never deleted, learning follows commit order, logged rows must be valid,
-- ecom_forget reports what it deleted. Heads, requests, impressions and
-- feedback stay as they are. Tested by pgrx-tests/upgrade.sh (0.1.0 ->
-- ... -> 0.3.0 with loop rows written by 0.3.0 -> 0.4.0), which also checks
-- that the result has exactly the objects of a fresh install.
\echo Use "ALTER EXTENSION pg_ecom UPDATE TO '0.4.0'" to load this file. \quit

-- Which versions were ever active. 0.3.0 did not record it: every version
-- that is active, was activated when stored (ecom_adapt, ecom_meta_train,
-- ecom_learn with metrics->'activated'), or that a request names, was.
ALTER TABLE ecom.heads ADD COLUMN ever_active boolean NOT NULL DEFAULT false;
UPDATE ecom.heads h SET ever_active = true
 WHERE h.active
    OR h.hyper->>'kind' IS DISTINCT FROM 'learn'
    OR h.metrics->'activated' = 'true'::jsonb
    OR EXISTS (SELECT 1 FROM ecom.requests r WHERE r.head_id = h.id);

-- The transaction that wrote a request: NULL for the rows written before.
ALTER TABLE ecom.requests ADD COLUMN txid xid8;
ALTER TABLE ecom.requests ALTER COLUMN txid SET DEFAULT pg_catalog.pg_current_xact_id();
CREATE INDEX requests_head_id ON ecom.requests (head_id);
CREATE INDEX requests_tenant_txid ON ecom.requests (tenant, txid);
-- txid is always the inserting transaction's, also for rows that pg_dump
-- restores into another cluster (whose transaction ids differ)
CREATE FUNCTION ecom.requests_txid() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  NEW.txid := pg_catalog.pg_current_xact_id();
  RETURN NEW;
END
$$;
CREATE TRIGGER requests_txid BEFORE INSERT ON ecom.requests
  FOR EACH ROW EXECUTE FUNCTION ecom.requests_txid();

-- Rows that cannot be learned are refused from now on. Rows 0.3.0 wrote
-- itself always pass; rows written into the tables directly may not: then
-- the constraint stays NOT VALID (new rows are checked, old ones kept), a
-- WARNING says which, and learning skips such rows.
ALTER TABLE ecom.requests ADD CONSTRAINT requests_behaviour_known
  CHECK (behaviour IN ('browse', 'click', 'cart', 'purchase')) NOT VALID;
ALTER TABLE ecom.requests ADD CONSTRAINT requests_features_finite
  CHECK (features IS NULL OR (pg_catalog.array_position(features, NULL) IS NULL
        AND NOT features OPERATOR(pg_catalog.&&) '{NaN,Infinity,-Infinity}'::real[])) NOT VALID;
ALTER TABLE ecom.requests ADD CONSTRAINT requests_head_id_fkey
  FOREIGN KEY (head_id) REFERENCES ecom.heads (id) NOT VALID;
ALTER TABLE ecom.impressions ADD CONSTRAINT impressions_behaviour_known
  CHECK (behaviour IN ('browse', 'click', 'cart', 'purchase')) NOT VALID;
ALTER TABLE ecom.impressions ADD CONSTRAINT impressions_features_finite
  CHECK (features IS NULL OR (pg_catalog.array_position(features, NULL) IS NULL
        AND NOT features OPERATOR(pg_catalog.&&) '{NaN,Infinity,-Infinity}'::real[])) NOT VALID;
ALTER TABLE ecom.impressions ADD CONSTRAINT impressions_score_probability
  CHECK (score >= 0 AND score <= 1) NOT VALID;
DO $$
DECLARE
  c record;
BEGIN
  FOR c IN SELECT conrelid::regclass AS rel, conname FROM pg_catalog.pg_constraint
            WHERE connamespace = 'ecom'::regnamespace AND NOT convalidated ORDER BY conname
  LOOP
    BEGIN
      EXECUTE pg_catalog.format('ALTER TABLE %s VALIDATE CONSTRAINT %I', c.rel, c.conname);
    EXCEPTION WHEN check_violation OR foreign_key_violation THEN
      RAISE WARNING 'pg_ecom: rows of % break constraint % (written directly, or a head deleted by 0.3.0); they are kept, learning skips them, and new rows are checked',
                    c.rel, c.conname
        USING HINT = pg_catalog.format('The constraint is %s. Correct or delete those rows, then run ALTER TABLE %s VALIDATE CONSTRAINT %I.',
                                       (SELECT pg_catalog.pg_get_constraintdef(oid) FROM pg_catalog.pg_constraint
                                         WHERE conname = c.conname AND conrelid = c.rel), c.rel, c.conname);
    END;
  END LOOP;
END
$$;

-- ecom_forget reports what it deleted (heads, requests, impressions,
-- feedback): a new result type.
DROP FUNCTION @extschema@.ecom_forget(text);
CREATE FUNCTION @extschema@.ecom_forget(
	"tenant" TEXT
) RETURNS jsonb
VOLATILE PARALLEL UNSAFE COST 1000
LANGUAGE c
AS 'MODULE_PATHNAME', 'ecom_forget_wrapper';
