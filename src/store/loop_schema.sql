-- The loop (docs/loop.md): what ecom_serve showed and what
-- followed. Written in the caller's transaction; pg_dump keeps the rows.

-- One row per ecom_serve call: the candidates it ranked (what off-policy
-- evaluation re-ranks with another head) and how.
CREATE TABLE ecom.requests (
    id              bigint GENERATED ALWAYS AS IDENTITY,
    tenant          text NOT NULL CHECK (tenant <> ''),
    served_at       timestamptz NOT NULL DEFAULT now(),
    context         text NOT NULL,
    items           text[] NOT NULL,                  -- as given, NULLs kept (item_index refers to it)
    features        real[],                           -- side features, item after item
    k               int  NOT NULL CHECK (k > 0),
    behaviour       text NOT NULL,
    explore         text NOT NULL,
    seed            bigint NOT NULL,                  -- replays the same ranking with ecom_rank
    head_tenant     text,                             -- NULL = served by the global head
    head_version    int  NOT NULL,
    head_id         bigint NOT NULL,                  -- ecom.heads.id of the serving head
    -- the keys carry the tenant: a row of one tenant can never hang off
    -- another tenant's (foreign-key checks ignore row-level security), and
    -- Citus can distribute the loop's tables by tenant (docs/scaling.md)
    PRIMARY KEY (id, tenant),
    -- since 0.4.0: the writing transaction (learning's cursor follows
    -- commit order with it); NULL for rows written before 0.4.0
    txid            xid8 DEFAULT pg_catalog.pg_current_xact_id(),
    CONSTRAINT requests_behaviour_known CHECK (behaviour IN ('browse', 'click', 'cart', 'purchase')),
    CONSTRAINT requests_features_finite CHECK (features IS NULL OR (pg_catalog.array_position(features, NULL) IS NULL
        AND NOT features OPERATOR(pg_catalog.&&) '{NaN,Infinity,-Infinity}'::real[])),
    -- a head that served is never deleted
    CONSTRAINT requests_head_id_fkey FOREIGN KEY (head_id) REFERENCES ecom.heads (id)
);
CREATE INDEX requests_tenant_served_at ON ecom.requests (tenant, served_at);
CREATE INDEX requests_served_at ON ecom.requests (served_at);     -- retention
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

-- One row per shown item.
CREATE TABLE ecom.impressions (
    id              bigint GENERATED ALWAYS AS IDENTITY,
    request_id      bigint NOT NULL,
    tenant          text NOT NULL,
    served_at       timestamptz NOT NULL DEFAULT now(),
    context         text NOT NULL,
    item_index      int  NOT NULL,
    item            text NOT NULL,
    rank            int  NOT NULL CHECK (rank > 0),
    score           float8 NOT NULL,                  -- the serving head's probability of the behaviour
    propensity      float8 NOT NULL CHECK (propensity > 0 AND propensity <= 1),
    behaviour       text NOT NULL,
    head_version    int  NOT NULL,
    explore         text NOT NULL,
    features        real[],                           -- this item's side features
    PRIMARY KEY (id, tenant),
    FOREIGN KEY (request_id, tenant) REFERENCES ecom.requests (id, tenant) ON DELETE CASCADE,
    CONSTRAINT impressions_behaviour_known CHECK (behaviour IN ('browse', 'click', 'cart', 'purchase')),
    CONSTRAINT impressions_features_finite CHECK (features IS NULL OR (pg_catalog.array_position(features, NULL) IS NULL
        AND NOT features OPERATOR(pg_catalog.&&) '{NaN,Infinity,-Infinity}'::real[])),
    CONSTRAINT impressions_score_probability CHECK (score >= 0 AND score <= 1)
);
CREATE INDEX impressions_tenant_served_at ON ecom.impressions (tenant, served_at);
CREATE INDEX impressions_request_id ON ecom.impressions (request_id);

-- What followed an impression: one label per behaviour.
CREATE TABLE ecom.feedback (
    impression_id   bigint NOT NULL,
    tenant          text NOT NULL,                    -- the impression's, for row-level security
    behaviour       text NOT NULL CHECK (behaviour IN ('browse', 'click', 'cart', 'purchase')),
    label           boolean NOT NULL,
    implied         boolean NOT NULL DEFAULT false,   -- recorded by pg_ecom.feedback_implies
    recorded_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (impression_id, tenant, behaviour),
    FOREIGN KEY (impression_id, tenant) REFERENCES ecom.impressions (id, tenant) ON DELETE CASCADE
);
CREATE INDEX feedback_tenant ON ecom.feedback (tenant);

SELECT pg_catalog.pg_extension_config_dump('ecom.requests', '');
SELECT pg_catalog.pg_extension_config_dump('ecom.requests_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('ecom.impressions', '');
SELECT pg_catalog.pg_extension_config_dump('ecom.impressions_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('ecom.feedback', '');

-- Each impression with what followed: per behaviour true/false as
-- recorded, NULL when nothing was; reward = its own behaviour's label
-- (no feedback = false). Feedback is looked up per impression by its key
-- (a LATERAL aggregate, never flattened into a join): a join let the
-- planner, with statistics that did not know a tenant yet (estimated at
-- one row), re-read the tenant's whole feedback for every impression, and
-- one new tenant's 6,000 impressions took 6 s to read, growing with the
-- square (test/t/016_stale_statistics.sh).
CREATE VIEW ecom.impression_outcomes WITH (security_invoker = true) AS
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

-- Per tenant and day (in the session's TimeZone): impressions, each
-- behaviour's count and rate, the mean predicted probability of the served
-- behaviour against its observed rate, and the AUC of the served scores
-- against the outcomes (NULL until a day has both outcomes).
CREATE VIEW ecom.tenant_performance WITH (security_invoker = true) AS
WITH o AS (
  SELECT tenant, pg_catalog.date_trunc('day', served_at) AS day, score, reward,
         browse, click, cart, purchase,
         pg_catalog.rank() OVER w
           + (pg_catalog.count(*) OVER (PARTITION BY tenant, pg_catalog.date_trunc('day', served_at), score) - 1) / 2.0 AS r
    FROM ecom.impression_outcomes
  WINDOW w AS (PARTITION BY tenant, pg_catalog.date_trunc('day', served_at) ORDER BY score)
), d AS (
  SELECT tenant, day, pg_catalog.count(*) AS impressions,
         pg_catalog.count(*) FILTER (WHERE browse)   AS browses,
         pg_catalog.count(*) FILTER (WHERE click)    AS clicks,
         pg_catalog.count(*) FILTER (WHERE cart)     AS carts,
         pg_catalog.count(*) FILTER (WHERE purchase) AS purchases,
         pg_catalog.avg(score) AS mean_predicted,
         pg_catalog.avg(reward::int) AS observed_rate,
         pg_catalog.count(*) FILTER (WHERE reward) AS positives,
         pg_catalog.sum(r) FILTER (WHERE reward) AS rank_sum
    FROM o
   GROUP BY tenant, day
)
SELECT tenant, day, impressions,
       browses,   browses::float8   / impressions AS browse_rate,
       clicks,    clicks::float8    / impressions AS click_rate,
       carts,     carts::float8     / impressions AS cart_rate,
       purchases, purchases::float8 / impressions AS purchase_rate,
       mean_predicted, observed_rate::float8 AS observed_rate,
       CASE WHEN positives > 0 AND positives < impressions
            THEN ((rank_sum - positives * (positives + 1) / 2.0)
                  / (positives * (impressions - positives)))::float8
       END AS online_auc
  FROM d;
