-- Tenant isolation with row-level security (the recipe in README "Privileges
-- and tenant isolation"): a tenant's role reads, predicts with, adapts, rolls
-- back and forgets only its own heads; the global head is readable by all.
CREATE TABLE rls_events AS
SELECT 'rls_' || (ARRAY['alice', 'bob'])[1 + g % 2] AS tenant,
       'viewed: ' || (ARRAY['tea', 'bikes'])[1 + (g / 2) % 2] AS context,
       (ARRAY['green tea tin', 'road bike helmet'])[1 + (g / 2 + g / 5) % 2] AS item,
       'purchase' AS behaviour,
       (g / 2) % 2 = (g / 2 + g / 5) % 2 AS label
  FROM generate_series(1, 80) g;
SELECT (r->>'version')::int > 0 AS trained FROM ecom_meta_train('rls_events', meta_steps => 10) r;
-- the recipe: one role per tenant, named like the tenant
CREATE ROLE rls_alice; CREATE ROLE rls_bob;
GRANT USAGE ON SCHEMA ecom TO rls_alice, rls_bob;
GRANT SELECT, INSERT, UPDATE, DELETE ON ecom.heads TO rls_alice, rls_bob;
GRANT SELECT ON ecom.tenant_summary TO rls_alice, rls_bob;
ALTER TABLE ecom.heads ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_reads ON ecom.heads FOR SELECT USING (tenant IS NULL OR tenant = current_user);
CREATE POLICY tenant_inserts ON ecom.heads FOR INSERT WITH CHECK (tenant = current_user);
CREATE POLICY tenant_updates ON ecom.heads FOR UPDATE USING (tenant = current_user) WITH CHECK (tenant = current_user);
CREATE POLICY tenant_deletes ON ecom.heads FOR DELETE USING (tenant = current_user);
-- the loop under the same recipe: requests, impressions and feedback
-- carry the tenant, and the views are security_invoker
GRANT SELECT, INSERT, DELETE ON ecom.requests, ecom.impressions TO rls_alice, rls_bob;
GRANT SELECT, INSERT, UPDATE, DELETE ON ecom.feedback TO rls_alice, rls_bob;
GRANT SELECT ON ecom.impression_outcomes, ecom.tenant_performance TO rls_alice, rls_bob;
ALTER TABLE ecom.requests ENABLE ROW LEVEL SECURITY;
ALTER TABLE ecom.impressions ENABLE ROW LEVEL SECURITY;
ALTER TABLE ecom.feedback ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_rows ON ecom.requests USING (tenant = current_user) WITH CHECK (tenant = current_user);
CREATE POLICY tenant_rows ON ecom.impressions USING (tenant = current_user) WITH CHECK (tenant = current_user);
CREATE POLICY tenant_rows ON ecom.feedback USING (tenant = current_user) WITH CHECK (tenant = current_user);
-- each tenant's support data, readable only by its owner
CREATE TABLE rls_alice_support AS SELECT context, item, behaviour, label FROM rls_events WHERE tenant = 'rls_alice';
CREATE TABLE rls_bob_support AS SELECT context, item, behaviour, NOT label AS label FROM rls_events WHERE tenant = 'rls_bob';
ALTER TABLE rls_alice_support OWNER TO rls_alice;
ALTER TABLE rls_bob_support OWNER TO rls_bob;
SET ROLE rls_bob;
-- bob's head is trained hard on reversed labels, so it scores unlike the global one
SELECT (r->>'version')::int AS bob_version FROM ecom_adapt('rls_bob', 'rls_bob_support', method => 'full', steps => 200, lr => 1) r;
SELECT ecom_predict('rls_bob', 'viewed: bikes', 'road bike helmet') AS p \gset bob_
SELECT :bob_p <> ecom_predict('nobody', 'viewed: bikes', 'road bike helmet') AS bobs_head_differs;
RESET ROLE;
SET ROLE rls_alice;
SELECT (r->>'version')::int AS alice_version FROM ecom_adapt('rls_alice', 'rls_alice_support') r;
-- alice sees her head and the global one, never bob's
SELECT tenant, version FROM ecom.heads ORDER BY tenant NULLS FIRST, version;
SELECT tenant, active_version FROM ecom.tenant_summary ORDER BY tenant NULLS FIRST;
-- predicting "as bob" gives the global head's score, not bob's
SELECT ecom_predict('rls_bob', 'viewed: bikes', 'road bike helmet') = ecom_predict('nobody', 'viewed: bikes', 'road bike helmet') AS served_by_global,
       ecom_predict('rls_bob', 'viewed: bikes', 'road bike helmet') <> :bob_p AS not_bobs_score;
-- writing bob's heads is refused or finds nothing
SELECT ecom_adapt('rls_bob', 'rls_alice_support');
SELECT ecom_rollback('rls_bob', 1);
SELECT ecom_forget('rls_bob') AS deleted;
-- and bob's support data is not hers to read
SELECT ecom_adapt('rls_alice', 'rls_bob_support');
RESET ROLE;
-- a policy that reads a setting: a PL/pgSQL function that changes the
-- setting between calls at one call site sees exactly the heads the policy
-- allows at each call (same snapshot, same role, new setting)
CREATE ROLE rls_reader;
GRANT USAGE ON SCHEMA ecom TO rls_reader;
GRANT SELECT ON ecom.heads TO rls_reader;
CREATE POLICY by_setting ON ecom.heads FOR SELECT TO rls_reader
 USING (tenant = current_setting('app.tenant', true));
CREATE FUNCTION rls_scores(tenants text[]) RETURNS TABLE (allowed text, score float8) LANGUAGE plpgsql AS $$
DECLARE t text;
BEGIN
  FOREACH t IN ARRAY tenants LOOP
    PERFORM set_config('app.tenant', t, true);
    allowed := t;
    score := ecom_predict('rls_bob', 'viewed: bikes', 'road bike helmet');
    RETURN NEXT;
  END LOOP;
END $$;
SELECT ecom_predict('nobody', 'viewed: bikes', 'road bike helmet') AS global_p \gset
SET ROLE rls_reader;
BEGIN;
SELECT allowed, CASE score WHEN :bob_p THEN 'bob''s head' WHEN :global_p THEN 'global head' ELSE 'other' END AS served_by
  FROM rls_scores(ARRAY['rls_bob', 'nobody', 'rls_bob', 'rls_alice']);
COMMIT;
RESET ROLE;
DROP FUNCTION rls_scores(text[]);
DROP POLICY by_setting ON ecom.heads;
REVOKE ALL ON ecom.heads FROM rls_reader;
REVOKE ALL ON SCHEMA ecom FROM rls_reader;
DROP ROLE rls_reader;
SELECT tenant, count(*) AS versions, count(*) FILTER (WHERE active) AS active FROM ecom.heads
 WHERE tenant LIKE 'rls\_%' GROUP BY tenant ORDER BY tenant;
-- the loop: bob serves and records feedback
SET ROLE rls_bob;
SELECT count(*) AS bob_shown FROM ecom_serve('rls_bob', 'viewed: tea', ARRAY['green tea tin', 'road bike helmet'], 2);
SELECT min(id) AS bob_impression FROM ecom.impressions \gset
SELECT ecom_feedback(:bob_impression, 'click') AS recorded;
RESET ROLE;
SET ROLE rls_alice;
-- alice cannot serve as bob, sees none of his impressions, feedback or
-- daily figures, cannot give feedback on them, and learns nothing from them
SELECT count(*) FROM ecom_serve('rls_bob', 'viewed: tea', ARRAY['green tea tin'], 1);
SELECT (SELECT count(*) FROM ecom.requests) AS requests, (SELECT count(*) FROM ecom.impressions) AS impressions,
       (SELECT count(*) FROM ecom.feedback) AS feedback, (SELECT count(*) FROM ecom.impression_outcomes) AS outcomes,
       (SELECT count(*) FROM ecom.tenant_performance) AS days;
SELECT ecom_feedback(:bob_impression, 'purchase');
SET pg_ecom.feedback_window = 0;
SELECT (ecom_evaluate('rls_bob', NULL)->>'n')::int AS bob_impressions_seen;
RESET pg_ecom.feedback_window;
-- her own loop works
SELECT count(*) AS alice_shown FROM ecom_serve('rls_alice', 'viewed: tea', ARRAY['green tea tin', 'road bike helmet'], 1);
SELECT (SELECT count(*) FROM ecom.impressions) AS impressions, (SELECT sum(impressions) FROM ecom.tenant_performance) AS counted;
RESET ROLE;
-- forgetting leaves nothing of the tenant behind
SET ROLE rls_bob;
SELECT ecom_forget('rls_bob') AS deleted;
RESET ROLE;
SELECT count(*) AS bob_rows_left FROM ecom.heads WHERE tenant = 'rls_bob';
SELECT (SELECT count(*) FROM ecom.impressions WHERE tenant = 'rls_bob') AS bob_impressions_left,
       (SELECT count(*) FROM ecom.feedback WHERE tenant = 'rls_bob') AS bob_feedback_left;
DROP POLICY tenant_rows ON ecom.requests; DROP POLICY tenant_rows ON ecom.impressions; DROP POLICY tenant_rows ON ecom.feedback;
ALTER TABLE ecom.requests DISABLE ROW LEVEL SECURITY;
ALTER TABLE ecom.impressions DISABLE ROW LEVEL SECURITY;
ALTER TABLE ecom.feedback DISABLE ROW LEVEL SECURITY;
REVOKE ALL ON ecom.requests, ecom.impressions, ecom.feedback, ecom.impression_outcomes, ecom.tenant_performance FROM rls_alice, rls_bob;
-- undo the recipe
DROP POLICY tenant_reads ON ecom.heads; DROP POLICY tenant_inserts ON ecom.heads;
DROP POLICY tenant_updates ON ecom.heads; DROP POLICY tenant_deletes ON ecom.heads;
ALTER TABLE ecom.heads DISABLE ROW LEVEL SECURITY;
SELECT ecom_forget('rls_alice') AS deleted;
DROP TABLE rls_events, rls_alice_support, rls_bob_support;
REVOKE ALL ON ecom.heads FROM rls_alice, rls_bob;
REVOKE ALL ON ecom.tenant_summary FROM rls_alice, rls_bob;
REVOKE ALL ON SCHEMA ecom FROM rls_alice, rls_bob;
DROP ROLE rls_alice, rls_bob;
SELECT ecom_rollback(NULL, (SELECT min(version) FROM ecom.heads WHERE tenant IS NULL));
