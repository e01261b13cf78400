#!/usr/bin/env bash
# The evaluation harness: MovieLens-100K tenants, five methods, through SQL.
# usage: benches/eval/run.sh [--small] [--finetune] [prepare.py options...]
#   (default: 5 seeds, K = 8,16,32,64; --small: the CI configuration)
#   --finetune: each seed is judged with an encoder fine-tuned by
#   scripts/finetune on that seed's meta-train tenants only (options for
#   the trainer in FINETUNE_ARGS, e.g. "--steps 300"); they are removed
#   again when the run ends. FINETUNE_ROWS=all gives the trainer every
#   event of the meta-train tenants, not only the sampled ones that
#   ecom_meta_train gets (the default, "sampled").
# Writes .ecom/eval/{events.csv,eval.sql,auc.csv,report.md}.
set -euo pipefail
cd "$(dirname "$0")/../.."
scripts/setup >/dev/null
FINETUNE=
ARGS=()
for x in "$@"; do
  if [ "$x" = --finetune ]; then FINETUNE=1; else ARGS+=("$x"); fi
done
if [ "${ARGS[0]:-}" = "--small" ]; then
  ARGS=(--seeds 1 --ks 16 --test-tenants 4 --train-events 150 --query 120 "${ARGS[@]:1}")
fi
PREFIX=eval-finetuned-$$
case ${FINETUNE_ROWS:-sampled} in all|sampled) ;; *) echo "FINETUNE_ROWS: all or sampled" >&2; exit 2 ;; esac
[ -n "$FINETUNE" ] && ARGS+=(--finetuned "$PREFIX")
OUT=$PWD/.ecom/eval
mkdir -p "$OUT"
VENV=$PWD/.ecom/venv
DATA=$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/recbole/dataset_example/ml-100k
"$VENV/bin/python" benches/eval/prepare.py --data "$DATA" --out "$OUT" "${ARGS[@]}"
chmod -R a+rX "$OUT"
PORT=${PG_ECOM_EVAL_PORT:-$(scripts/cluster free-port 26340)}
scripts/cluster start eval "$PORT"
ENCODERS=$(${PG_CONFIG:-pg_config} --sharedir)/extension/pg_ecom/encoders
SUDO=; [ -w "$ENCODERS" ] || SUDO=sudo
# the per-seed encoders and their work directories (checkpoints: about
# 300 MB each) go when the run ends
trap 'scripts/cluster stop eval "$PORT"; [ -z "$FINETUNE" ] || { $SUDO rm -rf "$ENCODERS/$PREFIX"-s*; rm -rf .ecom/finetune/"$PREFIX"-s*; }' EXIT
scripts/cluster psql eval "$PORT" -d postgres -q -c "DROP EXTENSION IF EXISTS pg_ecom CASCADE" -c "CREATE EXTENSION pg_ecom"
if [ -n "$FINETUNE" ]; then
  # the events as a table scripts/finetune reads, and each seed's meta-train tenants
  scripts/cluster psql eval "$PORT" -d postgres -q \
    -c "DROP TABLE IF EXISTS eval_events, eval_finetune_tenants CASCADE" \
    -c "CREATE TABLE eval_events (tenant text, usr int, ts bigint, trank int, context text, item text, label boolean, features real[], pop real, early boolean, sampled boolean)" \
    -c "\\copy eval_events FROM '$OUT/events.csv' WITH (FORMAT csv, HEADER true)" \
    -c "CREATE TABLE eval_finetune_tenants (seed int, tenant text)" \
    -c "\\copy eval_finetune_tenants FROM '$OUT/finetune_tenants.csv' WITH (FORMAT csv, HEADER true)" \
    -c "CREATE VIEW eval_finetune_source AS SELECT e.tenant, e.context, e.item, 'purchase'::text AS behaviour, e.label, f.seed FROM eval_events e JOIN eval_finetune_tenants f USING (tenant) WHERE e.sampled OR '${FINETUNE_ROWS:-sampled}' = 'all'"
  for seed in $(cut -d, -f1 "$OUT/finetune_tenants.csv" | tail -n +2 | sort -un); do
    echo "== fine-tuning the encoder for seed $seed on its meta-train tenants" >&2
    # shellcheck disable=SC2086
    PGHOST=127.0.0.1 PGPORT=$PORT PGUSER=postgres PGDATABASE=postgres \
      scripts/finetune --source eval_finetune_source --where "seed = $seed" --name "$PREFIX-s$seed" \
        --no-meta-train --replace ${FINETUNE_ARGS:-} > "$OUT/finetune_s$seed.json"
  done
fi
time scripts/cluster psql eval "$PORT" -d postgres -q -f "$OUT/eval.sql" > "$OUT/eval.log"
if [ -n "$FINETUNE" ]; then
  # what each fine-tune costs similar-product retrieval: products.tsv's
  # English queries against its English titles (benches/MULTILINGUAL.md),
  # pairs no fine-tune saw
  { echo "| encoder | query→title | queries | recall@1 | recall@5 | MRR |"; echo "|---|---|---|---|---|---|"
    for enc in "" $(cd "$ENCODERS" && ls -d "$PREFIX"-s*); do
      scripts/cluster psql eval "$PORT" -d postgres -q -v encoder="$enc" -f benches/multilingual/retrieval.sql \
        < <(tail -n +2 benches/multilingual/products.tsv) | grep '^| .* | en→en |'
    done; } > "$OUT/retrieval.md"
fi
"$VENV/bin/python" benches/eval/report.py "$OUT" "benches/eval/run.sh ${*:-}" | tee "$OUT/report.md"
