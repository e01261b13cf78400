#!/usr/bin/env bash
# The 12-layer multilingual-e5-small next to the 6-layer MiniLM, backend mode
# (benches/MULTILINGUAL.md): model load on a connection's first call, bulk
# embeddings per second (ecom_embed_batch, the embedding cache off, 1 ONNX
# Runtime thread), and the connection's resident memory once loaded.
# usage: benches/multilingual/speed.sh PORT [TEXTS]
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
echo "| encoder | variant | first call (ms) | bulk emb/s | RSS after load (MB) | avg tokens |"
echo "|---|---|---|---|---|---|"
for enc in "" multilingual-e5-small; do
  for variant in fp32 int8; do
    out=$(psql <<SQL
SET pg_ecom.encoder = '$enc';
SET pg_ecom.model_variant = '$variant';
SET pg_ecom.embedding_cache_mb = 0;
SELECT clock_timestamp() AS t0 \gset
SELECT ecom_embed('warm-up') IS NOT NULL;
SELECT round(extract(epoch FROM clock_timestamp() - :'t0') * 1000) AS first_ms \gset
SELECT (SELECT round(avg(array_length(ecom_tokenize(t, 256), 1)), 1) FROM texts) AS tokens \gset
SELECT clock_timestamp() AS t1 \gset
SELECT count(*) FROM ecom_embed_batch(ARRAY(SELECT t FROM texts));
SELECT round($N / extract(epoch FROM clock_timestamp() - :'t1')) AS rate \gset
SELECT pg_backend_pid() AS pid \gset
\echo :first_ms :rate :pid :tokens
SQL
)
    read -r first rate pid tokens <<< "$(tail -1 <<< "$out")"
    rss=$(awk '/VmRSS/ {printf "%.0f", $2/1024}' /proc/$pid/status 2>/dev/null || echo "?")
    echo "| ${enc:-all-MiniLM-L6-v2} | $variant | $first | $rate | $rss | $tokens |"
  done
done
