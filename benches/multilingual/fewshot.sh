#!/usr/bin/env bash
# The few-shot protocol (benches/eval) on the 300 most-rated MovieLens movies,
# titled in English or in Chinese (benches/multilingual/ml100k_titles_zh.tsv),
# with MiniLM and with multilingual-e5-small: the same tenants, events and
# seeds in every arm, only the text and the encoder change.
# usage: benches/multilingual/fewshot.sh [prepare.py options, e.g. --seeds 3]
set -euo pipefail
cd "$(dirname "$0")/../.."
VENV=$PWD/.ecom/venv
DATA=$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/recbole/dataset_example/ml-100k
ZH=$PWD/benches/multilingual/ml100k_titles_zh.tsv
OUT=$PWD/.ecom/fewshot_zh
mkdir -p "$OUT"
# the same 300 movies under their MovieLens titles
EN=$OUT/titles_en.tsv
{ grep '^genre' "$ZH" | awk -F'\t' -v OFS='\t' '{print $1, $2, $2}'
  grep -v '^#\|^genre' "$ZH" | cut -f1 | while read -r id; do
    awk -F'\t' -v id="$id" -v OFS='\t' '$1 == id {print $1, $2}' "$DATA/ml-100k.item"; done; } > "$EN"
PORT=${PG_ECOM_EVAL_PORT:-$(scripts/cluster free-port 26350)}
scripts/cluster start fewshot "$PORT"
trap 'scripts/cluster stop fewshot "$PORT"' EXIT
for arm in "en|" "en|multilingual-e5-small" "zh|multilingual-e5-small" "zh|"; do
  lang=${arm%%|*}; enc=${arm#*|}
  dir=$OUT/$lang-${enc:-minilm}
  mkdir -p "$dir"
  if [ "$lang" = zh ]; then titles=(--titles "$ZH" --zh-context); else titles=(--titles "$EN"); fi
  "$VENV/bin/python" benches/eval/prepare.py --data "$DATA" --out "$dir" "${titles[@]}" --encoder "$enc" "$@" >/dev/null
  chmod -R a+rX "$OUT"
  scripts/cluster psql fewshot "$PORT" -d postgres -q -c "DROP EXTENSION IF EXISTS pg_ecom CASCADE" -c "CREATE EXTENSION pg_ecom"
  start=$(date +%s)
  scripts/cluster psql fewshot "$PORT" -d postgres -q -f "$dir/eval.sql" > "$dir/eval.log"
  echo "== $lang titles, ${enc:-all-MiniLM-L6-v2} ($(( $(date +%s) - start )) s)"
  "$VENV/bin/python" benches/eval/report.py "$dir" "benches/multilingual/fewshot.sh $*" > "$dir/report.md"
  cat "$dir/report.md"
done
