-- pg_ecom reads text as UTF-8: CREATE EXTENSION refuses other encodings.
SELECT current_database() AS regress_db \gset
CREATE DATABASE ecom_latin1 TEMPLATE template0 ENCODING 'LATIN1' LC_COLLATE 'C' LC_CTYPE 'C';
CREATE DATABASE ecom_sql_ascii TEMPLATE template0 ENCODING 'SQL_ASCII' LC_COLLATE 'C' LC_CTYPE 'C';
\c ecom_latin1
CREATE EXTENSION pg_ecom;
SELECT count(*) AS installed FROM pg_extension WHERE extname = 'pg_ecom';
SELECT count(*) AS schemas FROM pg_namespace WHERE nspname = 'ecom';
\c ecom_sql_ascii
CREATE EXTENSION pg_ecom;
\c :regress_db
DROP DATABASE ecom_latin1;
DROP DATABASE ecom_sql_ascii;
-- in a UTF8 database non-ASCII text is read as it is
SELECT ecom_tokens('Café crème brûlée') AS tokens;
