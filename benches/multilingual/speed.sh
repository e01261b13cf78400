#!/usr/bin/env bash
# The 12-layer multilingual-e5-small next to the 6-layer MiniLM
# (benches/MULTILINGUAL.md): a connection's first call (loading the model in
# backend mode), bulk embeddings per second (ecom_embed_batch of TEXTS unseen
# titles, the embedding cache off), and resident memory once loaded: the
# connection's (before and after ecom_tokenize, which loads the tokenizer
# into the backend), and in worker mode the inference worker's.
# usage: benches/multilingual/speed.sh PORT [TEXTS]
# PG_ECOM_ENCODERS: the encoders measured, comma-separated ('' is the
# default encoder); by default ",multilingual-e5-small"
#   (the cluster's mode decides: pg_ecom preloaded means worker mode)
set -euo pipefail
cd "$(dirname "$0")/../.."
PORT=$1; N=${2:-2000}
psql() { command psql -h 127.0.0.1 -p "$PORT" -U postgres -X -qAt -d pg_ecom_multilingual "$@"; }
command psql -h 127.0.0.1 -p "$PORT" -U postgres -X -q -d postgres -c "SET client_min_messages = warning" \
  -c "DROP DATABASE IF EXISTS pg_ecom_multilingual" -c "CREATE DATABASE pg_ecom_multilingual"
psql -c "CREATE EXTENSION pg_ecom"
# N distinct short titles, half English and half Chinese (products.tsv, numbered)
psql -c "CREATE TABLE titles (t text)"
tail -n +2 benches/multilingual/products.tsv | cut -f2,3 | tr '\t' '\n' > /tmp/ml_titles.$$
psql -c "\copy titles FROM '/tmp/ml_titles.$$'"
rm -f /tmp/ml_titles.$$
psql -c "CREATE TABLE texts AS SELECT t || ' ' || g AS t FROM titles, generate_series(1, ($N / (SELECT count(*) FROM titles))::int + 1) g LIMIT $N"
MODE=$(psql -c "SELECT ecom_model_info()->>'inference'")
echo "| mode | encoder | variant | first call (ms) | bulk emb/s | connection RSS (MB) | … after ecom_tokenize (MB) | worker RSS (MB) | avg tokens |"
echo "|---|---|---|---|---|---|---|---|---|"
IFS=, read -r -a ENCODERS <<< "${PG_ECOM_ENCODERS-,multilingual-e5-small}"
for enc in "${ENCODERS[@]}"; do
  for variant in fp32 int8; do
    out=$(psql <<SQL
SET pg_ecom.encoder = '$enc';
SET pg_ecom.model_variant = '$variant';
SET pg_ecom.embedding_cache_mb = 0;
SELECT clock_timestamp() AS t0 \gset
SELECT ecom_embed('warm-up') IS NOT NULL;
SELECT round(extract(epoch FROM clock_timestamp() - :'t0') * 1000) AS first_ms \gset
SELECT clock_timestamp() AS t1 \gset
SELECT count(*) FROM ecom_embed_batch(ARRAY(SELECT t FROM texts));
SELECT round($N / extract(epoch FROM clock_timestamp() - :'t1')) AS rate \gset
SELECT (regexp_match(pg_read_file('/proc/' || pg_backend_pid() || '/status'), 'VmRSS:\s+(\d+)'))[1]::int / 1024 AS rss \gset
SELECT coalesce((SELECT (regexp_match(pg_read_file('/proc/' || (ecom_worker_stats()->'worker'->>'pid') || '/status'), 'VmRSS:\s+(\d+)'))[1]::int / 1024
                  WHERE ecom_model_info()->>'inference' = 'worker')::text, '-') AS wrss \gset
SELECT (SELECT round(avg(array_length(ecom_tokenize(t, 256), 1)), 1) FROM texts) AS tokens \gset
SELECT (regexp_match(pg_read_file('/proc/' || pg_backend_pid() || '/status'), 'VmRSS:\s+(\d+)'))[1]::int / 1024 AS rss_tok \gset
\echo :first_ms :rate :rss :wrss :tokens :rss_tok
SQL
)
    read -r first rate rss wrss tokens rss_tok <<< "$(tail -1 <<< "$out")"
    echo "| $MODE | ${enc:-all-MiniLM-L6-v2} | $variant | $first | $rate | $rss | $rss_tok | $wrss | $tokens |"
  done
done
