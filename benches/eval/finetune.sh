#!/usr/bin/env bash
# The fine-tuned encoder against the stock one (issue 23; benches/EVAL.md,
# "The fine-tuned encoder"): each configuration runs twice with the same
# seeds and splits, once with the stock encoder and once with an encoder
# fine-tuned per seed on that seed's meta-train tenants only.
# usage: benches/eval/finetune.sh [CONFIG...]   (default: all of them)
#   configs: genre-text users-text occupation-text users-side
#   SEEDS (3), KS (64), FINETUNE_ARGS (the trainer's options) from the environment
# Writes .ecom/eval-finetune/CONFIG.md: the comparison and the retrieval check.
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=$PWD/.ecom/eval-finetune
mkdir -p "$OUT"
SEEDS=${SEEDS:-3} KS=${KS:-64}
export FINETUNE_ARGS=${FINETUNE_ARGS:-}
args_of() {
  case $1 in
    genre-text) echo "--protocol genre --text-only" ;;
    users-text) echo "--protocol users --tenant-pool 120 --test-tenants 20 --train-events 60 --query 100 --text-only" ;;
    users-side) echo "--protocol users --tenant-pool 120 --test-tenants 20 --train-events 60 --query 100" ;;
    occupation-text) echo "--protocol occupation --test-tenants 5 --text-only" ;;
    *) echo "unknown configuration $1" >&2; exit 2 ;;
  esac
}
CONFIGS=("$@")
[ ${#CONFIGS[@]} -gt 0 ] || CONFIGS=(genre-text users-text occupation-text users-side)
for c in "${CONFIGS[@]}"; do
  read -r -a A <<< "$(args_of "$c")"
  for variant in stock finetuned; do
    extra=(); [ "$variant" = finetuned ] && extra=(--finetune)
    echo "== $c, $variant encoder: benches/eval/run.sh ${extra[*]} ${A[*]} --seeds $SEEDS --ks $KS" >&2
    t0=$(date +%s)
    benches/eval/run.sh "${extra[@]}" "${A[@]}" --seeds "$SEEDS" --ks "$KS" > "$OUT/$c-$variant.log" 2>&1 \
      || { tail -30 "$OUT/$c-$variant.log" >&2; exit 1; }
    echo "   $(( $(date +%s) - t0 )) s" >&2
    rm -rf "${OUT:?}/$c-$variant"; cp -r .ecom/eval "$OUT/$c-$variant"
  done
  {
    python3 benches/eval/compare.py "$OUT/$c-stock" "$OUT/$c-finetuned"
    echo
    echo "Fine-tunes (one per seed; FINETUNE_ARGS='$FINETUNE_ARGS'):"
    echo
    echo "| seed | steps | best step | validation AUC stock → best | examples/s | seconds |"
    echo "|---|---|---|---|---|---|"
    for f in "$OUT/$c-finetuned"/finetune_s*.json; do
      python3 - "$f" <<'PY'
import json, re, sys
s = json.loads(open(sys.argv[1]).read().strip().splitlines()[-1])["trainer"]
seed = re.search(r"finetune_s(\d+)", sys.argv[1]).group(1)
print(f"| {seed} | {s['steps']} | {s['best_step']} | {s['stock_validation_auc']:.4f} → {s['best_validation_auc']:.4f} "
      f"| {s['examples_per_second']} | {s['seconds']} |")
PY
    done
    echo
    echo "Similar-product retrieval (benches/multilingual/products.tsv, English queries → English titles):"
    echo
    cat "$OUT/$c-finetuned/retrieval.md"
  } > "$OUT/$c.md"
  cat "$OUT/$c.md"
done
