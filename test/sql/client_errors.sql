-- What a client sees of errors and warnings raised in pg_ecom's Rust code,
-- at the most verbose setting: message, SQLSTATE, DETAIL/HINT, and no
-- LOCATION (it would name a Rust source file). The server runs with Rust
-- backtraces on (scripts/test); none may show here either.
\set VERBOSITY verbose
SELECT ecom_tokenize('x', 0);
SELECT ecom_similarity('{1,2}', '{1,2,3}');
SELECT ecom_predict('nobody', 'c', 'i', 'wishlist');
SELECT ecom_rollback('no-such-shop', 1);
-- a WARNING from Rust
SET pg_ecom.execution_provider = 'cuda';
SELECT ecom_embed('warning wanted') IS NOT NULL AS embedded;
RESET pg_ecom.execution_provider;
\set VERBOSITY default
-- an error Postgres raises inside pg_ecom's SPI call (permission denied):
-- its DETAIL would carry the backtrace (its LOCATION is Postgres' own)
CREATE TABLE ce_locked (context text, item text, behaviour text, label boolean);
CREATE ROLE ce_plain;
GRANT USAGE ON SCHEMA ecom TO ce_plain;
SET ROLE ce_plain;
SELECT ecom_adapt('ce_shop', 'ce_locked');
RESET ROLE;
DROP TABLE ce_locked;
REVOKE ALL ON SCHEMA ecom FROM ce_plain;
DROP ROLE ce_plain;
