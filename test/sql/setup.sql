-- Fresh extension for the regression run.
DROP EXTENSION IF EXISTS pg_ecom;
CREATE EXTENSION pg_ecom;
SELECT extname, extversion = ecom_version() AS versions_agree FROM pg_extension WHERE extname = 'pg_ecom';
-- Function properties: strictness, volatility, parallel safety.
SELECT proname, proisstrict, provolatile, proparallel
  FROM pg_proc WHERE proname LIKE 'ecom\_%' ORDER BY proname;
