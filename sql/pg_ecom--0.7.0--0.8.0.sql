-- pg_ecom 0.7.0 -> 0.8.0: ALTER EXTENSION pg_ecom UPDATE
-- No SQL object changes. What changes is the library: a version's
-- posterior (ecom.heads.posterior) now keeps the directions of the
-- isotropic taste part that its events informed (docs/modelling.md, "The
-- posterior"). Posteriors stored by 0.6.0 and 0.7.0 are read as they are,
-- draw as before, and are carried into the new form by the next
-- ecom_learn; a 0.7.0 library cannot read the new form, so do not go back
-- to it once 0.8.0 has learned. Tested by test/t/009_upgrade.sh.
\echo Use "ALTER EXTENSION pg_ecom UPDATE TO '0.8.0'" to load this file. \quit
