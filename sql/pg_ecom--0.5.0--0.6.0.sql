-- pg_ecom 0.5.0 -> 0.6.0: ALTER EXTENSION pg_ecom UPDATE
-- A structured taste prior (docs/modelling.md, "The taste prior"): the
-- directions along which tenants' tastes lie, learned by ecom_meta_train
-- and stored with the global head. Heads made before have none (NULL) and
-- adapt and score exactly as before until trained again. Tested by
-- test/t/009_upgrade.sh, which also checks that the result has exactly the
-- objects of a fresh install.
\echo Use "ALTER EXTENSION pg_ecom UPDATE TO '0.6.0'" to load this file. \quit

ALTER TABLE ecom.heads ADD COLUMN taste_basis real[];
