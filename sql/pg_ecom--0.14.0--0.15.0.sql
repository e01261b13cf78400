-- pg_ecom 0.14.0 -> 0.15.0: ALTER EXTENSION pg_ecom UPDATE
-- ecom.impression_outcomes (and ecom.tenant_performance, built on it) looks
-- feedback up per impression by its key instead of joining it: with
-- statistics that did not know a tenant yet, the join re-read the
-- tenant's whole feedback for every impression (6 s for 6,000 impressions,
-- growing with the square). Same columns, same rows; CREATE OR REPLACE
-- keeps grants on the view and the view built on it. No table changes:
-- heads and logs are kept row for row (test/t/009_upgrade.sh).
\echo Use "ALTER EXTENSION pg_ecom UPDATE TO '0.15.0'" to load this file. \quit

CREATE OR REPLACE VIEW ecom.impression_outcomes WITH (security_invoker = true) AS
SELECT i.id AS impression_id, i.request_id, i.tenant, i.served_at, i.context,
       i.item_index, i.item, i.rank, i.score, i.propensity, i.behaviour,
       i.head_version, i.explore,
       o.browse, o.click, o.cart, o.purchase, coalesce(o.reward, false) AS reward,
       o.last_feedback_at
  FROM ecom.impressions i
 CROSS JOIN LATERAL (
       SELECT pg_catalog.bool_or(f.label) FILTER (WHERE f.behaviour = 'browse')    AS browse,
              pg_catalog.bool_or(f.label) FILTER (WHERE f.behaviour = 'click')     AS click,
              pg_catalog.bool_or(f.label) FILTER (WHERE f.behaviour = 'cart')      AS cart,
              pg_catalog.bool_or(f.label) FILTER (WHERE f.behaviour = 'purchase')  AS purchase,
              pg_catalog.bool_or(f.label) FILTER (WHERE f.behaviour = i.behaviour) AS reward,
              pg_catalog.max(f.recorded_at) AS last_feedback_at
         FROM ecom.feedback f
        WHERE f.impression_id = i.id AND f.tenant = i.tenant) o;
