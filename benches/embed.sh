#!/usr/bin/env bash
# Embedding throughput and cold start, measured through SQL on the demo
# cluster (scripts/demo must have run once: it loads the products table).
# Throughput figures are the best of 3 runs, each in a new connection after
# a warm-up call (so model loading is excluded; cold start is measured apart).
# usage: benches/embed.sh [N_TITLES]   (default 1000)
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-1000}
PORT=${PG_ECOM_DEMO_PORT:-54328}
scripts/cluster start demo "$PORT"
trap 'scripts/cluster stop demo "$PORT"' EXIT
q() { scripts/cluster psql demo "$PORT" -d postgres -qAt "$@"; }
ms() { # run SQL ($2) in a new connection after setup ($1), print ms of the last statement
  q -c "$1" -c '\timing on' -c "$2" | sed -n 's/^Time: \([0-9.]*\) ms.*/\1/p' | tail -1
}
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(free -g | awk '/Mem:/{print $2}') GiB"
echo "commit: $(git rev-parse --short HEAD), date: $(date -u +%F)"
BATCH="SELECT count(*) FROM ecom_embed_batch(ARRAY(SELECT item_text FROM products ORDER BY item_id LIMIT $N))"
ROW="SELECT count(ecom_embed(item_text)) FROM (SELECT item_text FROM products ORDER BY item_id LIMIT $N) t"
for variant in fp32 int8; do
  for threads in 1 2; do
    set_="SET pg_ecom.model_variant = '$variant'; SET pg_ecom.intra_op_threads = $threads; SELECT ecom_embed('warm')"
    # best of 3: this machine is shared and noisy
    b=$(for i in 1 2 3; do ms "$set_" "$BATCH"; done | sort -g | head -1)
    r=$(for i in 1 2 3; do ms "$set_" "$ROW"; done | sort -g | head -1)
    printf '%-5s threads=%d  ecom_embed_batch: %7.0f emb/s (%6.0f ms)   per-row ecom_embed: %7.0f emb/s\n' \
      "$variant" "$threads" "$(echo "$N*1000/$b" | bc -l)" "$b" "$(echo "$N*1000/$r" | bc -l)"
  done
done
for variant in fp32 int8; do
  for i in 1 2 3; do
    c=$(ms "SET pg_ecom.model_variant = '$variant'" "SELECT array_length(ecom_embed('first call'), 1)")
    echo "cold start ($variant, new connection, first ecom_embed): $c ms"
  done
done
