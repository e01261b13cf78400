#!/usr/bin/env bash
# Latency of ecom_adapt (K = 16, 64; steps 5, 20; texts already embedded, as
# the scoring issue asks: adaptation excludes encoding new texts) and of
# ecom_rank over 100 and 1,000 MovieLens titles (cold = texts not cached,
# warm = cached). Best of 5 runs, on the demo cluster after scripts/demo.
set -euo pipefail
cd "$(dirname "$0")/.."
PORT=${PG_ECOM_DEMO_PORT:-54328}
scripts/cluster start demo "$PORT"
trap 'scripts/cluster stop demo "$PORT"' EXIT
q() { scripts/cluster psql demo "$PORT" -d postgres -qAt "$@"; }
best() { sed -n 's/^Time: \([0-9.]*\) ms.*/\1/p' | sort -g | head -1; }
for K in 16 64; do
  for steps in 5 20; do
    sql="CREATE TEMP VIEW sup AS SELECT context, item, 'purchase'::text AS behaviour, label, features FROM ml_events WHERE tenant = 'Crime' AND early AND trank <= $K;
         SELECT count(*) FROM ecom_embed_batch(ARRAY(SELECT context FROM sup UNION ALL SELECT item FROM sup));"
    args=(-c "$sql" -c '\timing on')
    for i in 1 2 3 4 5; do args+=(-c "SELECT (ecom_adapt('bench', 'sup', steps => $steps))->>'ms'"); done
    t=$(q "${args[@]}" | best)
    echo "ecom_adapt K=$K steps=$steps: $t ms"
  done
done
q -c "DELETE FROM ecom.heads WHERE tenant = 'bench'"
for N in 100 1000; do
  items="ARRAY(SELECT item_text FROM products ORDER BY item_id LIMIT $N)"
  # side features per item, as many as the head was trained with
  k=$(q -c "SELECT n_features FROM ecom.heads WHERE tenant IS NULL AND active")
  rank="SELECT count(*) FROM ecom_rank('Crime', 'recently rated: Fargo; Pulp Fiction', $items, 10, 'purchase',
          CASE WHEN $k > 0 THEN array_fill(0.5::real, ARRAY[$N * $k]) END)"
  cold=$(q -c '\timing on' -c "$rank" | best)
  args=(-c "SELECT count(*) FROM ecom_embed_batch($items)" -c '\timing on')
  for i in 1 2 3 4 5; do args+=(-c "$rank"); done
  warm=$(q "${args[@]}" | best)
  echo "ecom_rank $N items: cold (encode all) $cold ms, warm (cached) $warm ms"
done
