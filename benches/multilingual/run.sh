#!/usr/bin/env bash
# Bilingual retrieval (benches/MULTILINGUAL.md): products.tsv's 105 products,
# each with an English and a Chinese title and an English and a Chinese
# query, ranked by each installed encoder.
# usage: benches/multilingual/run.sh PORT   (a cluster with pg_ecom installed)
# PG_ECOM_ENCODERS: the encoders to rank with, comma-separated ('' is the
# default encoder); by default ",multilingual-e5-small"
set -euo pipefail
cd "$(dirname "$0")/../.."
PORT=$1
TSV=$PWD/benches/multilingual/products.tsv
psql() { command psql -h 127.0.0.1 -p "$PORT" -U postgres -X -q "$@"; }
psql -d postgres -c "SET client_min_messages = warning" -c "DROP DATABASE IF EXISTS pg_ecom_multilingual" -c "CREATE DATABASE pg_ecom_multilingual"
psql -d pg_ecom_multilingual -c "CREATE EXTENSION pg_ecom"
echo "| encoder | query→title | queries | recall@1 | recall@5 | MRR |"
echo "|---|---|---|---|---|---|"
IFS=, read -r -a ENCODERS <<< "${PG_ECOM_ENCODERS-,multilingual-e5-small}"
for enc in "${ENCODERS[@]}"; do
  psql -d pg_ecom_multilingual -v encoder="$enc" -f benches/multilingual/retrieval.sql < <(tail -n +2 "$TSV") | grep '^|'
done
