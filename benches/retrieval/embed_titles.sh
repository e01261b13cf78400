#!/usr/bin/env bash
# N synthetic product titles (benches/retrieval/titles.py), embedded by
# pg_ecom (ecom_embed_batch, the default encoder, 5,000 per statement, the
# embedding cache off) into .ecom/retrieval/titles_N.copy, the catalogue of
# benches/retrieval/run.sh. Prints the throughput: the backfill rate of a
# plain UPDATE … FROM ecom_embed_batch.
# usage: benches/retrieval/embed_titles.sh PORT N
set -euo pipefail
cd "$(dirname "$0")/../.."
PORT=$1; N=$2
OUT=$PWD/.ecom/retrieval
mkdir -p "$OUT"
DB=pg_ecom_titles_$N
psql() { command psql -h 127.0.0.1 -p "$PORT" -U postgres -X -qAt -v ON_ERROR_STOP=1 "$@"; }
python3 benches/retrieval/titles.py "$N" 1 > "$OUT/titles_$N.txt"
psql -d postgres -c "SET client_min_messages = warning" -c "DROP DATABASE IF EXISTS $DB" -c "CREATE DATABASE $DB"
psql -d $DB -c "CREATE EXTENSION pg_ecom" -c "CREATE TABLE titles (id serial PRIMARY KEY, title text, embedding real[])" \
  -c "\copy titles (title) FROM '$OUT/titles_$N.txt'"
t0=$(date +%s)
for s in $(seq 0 5000 $((N - 1))); do
  psql -d $DB -c "SET pg_ecom.embedding_cache_mb = 0" -c "UPDATE titles t SET embedding = b.embedding
    FROM ecom_embed_batch(ARRAY(SELECT title FROM titles WHERE id > $s AND id <= $s + 5000 ORDER BY id)) b
   WHERE t.id = $s + b.ord"
done
t1=$(date +%s)
psql -d $DB -c "\copy (SELECT title, '[' || array_to_string(embedding, ',') || ']' FROM titles ORDER BY id) TO '$OUT/titles_$N.copy'"
psql -d postgres -c "DROP DATABASE $DB"
echo "embedded $N titles in $((t1 - t0)) s: $(( N / (t1 - t0 > 0 ? t1 - t0 : 1) )) titles/s (avg $(awk '{ n += NF } END { printf "%.1f", n / NR }' "$OUT/titles_$N.txt") words)"
