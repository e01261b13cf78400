#!/usr/bin/env bash
# A vectorizer's backfill against a hand-written one, on one cluster with
# pg_ecom preloaded (the inference worker encodes for both) and every
# embedding cache off (distinct titles; nothing is served twice):
#  - by hand: UPDATE … FROM ecom_embed_batch over the first M titles, 5,000
#    per statement (benches/retrieval/embed_titles.sh's way);
#  - the vectorizer: ecom_vectorizer_attach on the whole N-row table, then
#    the background worker alone, until ecom.vectorizer_status shows
#    nothing pending. Its view is sampled every 10 s (rows_per_second, lag).
# Titles: benches/retrieval/titles.py N 1. Prints a Markdown table.
# usage: benches/vectorizer/backfill.sh PORT N [M]
set -euo pipefail
cd "$(dirname "$0")/../.."
PORT=$1; N=$2; M=${3:-20000}
NAME=vectorizer_bench
as_pg() { if [ "$(id -u)" = 0 ]; then sudo -u postgres -- "$@"; else "$@"; fi; }
stop() { scripts/cluster stop $NAME "$PORT"; }
trap stop EXIT
stop
as_pg rm -rf .ecom/clusters/$NAME/data
PG_ECOM_SERVER_OPTS="-c shared_preload_libraries=pg_ecom -c pg_ecom.shared_cache_mb=0 -c pg_ecom.embedding_cache_mb=0" \
  scripts/cluster start $NAME "$PORT"
q() { scripts/cluster psql $NAME "$PORT" -d postgres -X -qAt -v ON_ERROR_STOP=1 "$@"; }
OUT=$PWD/.ecom/vectorizer; mkdir -p "$OUT"
python3 benches/retrieval/titles.py "$N" 1 > "$OUT/titles_$N.txt"
q -c "CREATE EXTENSION pg_ecom" -c "CREATE TABLE titles (id int GENERATED ALWAYS AS IDENTITY PRIMARY KEY, title text, embedding real[])" \
  -c "\copy titles (title) FROM '$OUT/titles_$N.txt'"
words=$(awk '{ n += NF } END { printf "%.1f", n / NR }' "$OUT/titles_$N.txt")

# by hand, the first M titles
t0=$(date +%s.%N)
for s in $(seq 0 5000 $((M - 1))); do
  q -c "UPDATE titles t SET embedding = b.embedding
          FROM ecom_embed_batch(ARRAY(SELECT title FROM titles WHERE id > $s AND id <= LEAST($s + 5000, $M) ORDER BY id)) b
         WHERE t.id = $s + b.ord"
done
t1=$(date +%s.%N)
by_hand=$(awk -v m="$M" -v a="$t0" -v b="$t1" 'BEGIN { printf "%.0f", m / (b - a) }')

# the vectorizer, the whole table
t0=$(date +%s.%N)
q -c "SELECT ecom_vectorizer_attach('titles', 'title', 'embedding')" >/dev/null
t1=$(date +%s.%N)
attach_s=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')
samples=""
while :; do
  row=$(q -c "SELECT pending, rows_per_second, coalesce(round(extract(epoch FROM lag))::text, '-') FROM ecom.vectorizer_status")
  [ "${row%%|*}" = 0 ] && break
  samples="$samples $row"
  sleep 10
done
t2=$(date +%s.%N)
backfill_s=$(awk -v a="$t1" -v b="$t2" 'BEGIN { printf "%.0f", b - a }')
rate=$(awk -v n="$N" -v s="$backfill_s" 'BEGIN { printf "%.0f", n / s }')
wrong=$(q -c "SELECT count(*) FROM titles WHERE embedding IS NULL")
view_rate=$(tr ' ' '\n' <<< "$samples" | awk -F'|' 'NF == 3 && $2 != "" { s += $2; k++ } END { if (k) printf "%.0f", s / k; else print "-" }')
max_lag=$(tr ' ' '\n' <<< "$samples" | awk -F'|' 'NF == 3 && $3 != "-" && $3 > m { m = $3 } END { print m + 0 }')
cat <<MD
| rows | titles (words, mean) | by hand: ecom_embed_batch, $M rows | attach (queues every row) | vectorizer backfill | rows/s | view's rows_per_second (mean of samples) | largest lag seen | rows left without embedding |
|---|---|---|---|---|---|---|---|---|
| $N | $words | $by_hand rows/s | $attach_s s | $backfill_s s | $rate | $view_rate | $max_lag s | $wrong |
MD
