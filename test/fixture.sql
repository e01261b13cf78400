-- The shared fixture of the shell-driven tests (concurrency, soak, cancel,
-- crash, replica): three tenants of synthetic events, a meta-trained global
-- head, and one tenant's events as a support set.
CREATE EXTENSION pg_ecom;
CREATE TABLE events AS
SELECT 'store' || (g % 3) AS tenant, 'viewed: item ' || (g % 7) AS context,
       'item ' || (g % 5) AS item, 'purchase'::text AS behaviour, (g % 7) > (g % 5) AS label
  FROM generate_series(1, 120) g;
SELECT ecom_meta_train('events', meta_steps => 10) IS NOT NULL AS trained;
CREATE TABLE support AS SELECT context, item, behaviour, label FROM events WHERE tenant = 'store1';
