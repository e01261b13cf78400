#!/usr/bin/env bash
# What delegation costs: ecom_serve through a Citus coordinator (the call
# delegated to the tenant's worker) against the same call on a single
# node. All three Citus nodes and the single node run on this machine, so
# this measures the overhead of the extra hop, not what more machines add.
# Each pgbench transaction is one greedy ecom_serve of 5 from 20 cached
# candidates for one of 8 tenants, at random.
# usage: benches/citus/serve.sh PORT [SECONDS]   (ports PORT .. PORT+2)
set -euo pipefail
cd "$(dirname "$0")/../.."
P0=$1 SECS=${2:-15}
P1=$((P0 + 1)) P2=$((P0 + 2))
NODES="bench_cc:$P0 bench_cw1:$P1 bench_cw2:$P2"
. test/citus_nodes.sh
trap 'citus_nodes_stop "$NODES"' EXIT
citus_nodes_stop "$NODES"
citus_nodes_create "$NODES"
c() { scripts/cluster psql bench_cc "$P0" "$@"; }
c -d postgres -qc "CREATE DATABASE single" >/dev/null
c -d ecom -qAt -c "SELECT citus_set_coordinator_host('127.0.0.1', $P0)" -c "SELECT citus_add_node('127.0.0.1', $P1)" \
  -c "SELECT citus_add_node('127.0.0.1', $P2)" >/dev/null
for db in single ecom; do
  c -d "$db" -q -f test/fixture.sql >/dev/null
done
c -d ecom -qAt -c "SELECT ecom_distribute()" >/dev/null
ITEMS="ARRAY[$(seq 0 19 | sed "s/.*/'item &'/" | paste -sd,)]"
SCRIPT=$(mktemp)
cat > "$SCRIPT" <<SQL
\set t random(0, 7)
SELECT count(*) FROM ecom_serve('store:t', 'viewed: item 1', $ITEMS, 5, explore => 'none');
SQL
# warm every node's caches (the 20 items and the context, every tenant);
# check that pgbench's substitution gives Citus a constant tenant, which
# it needs to delegate
for db in single ecom; do
  for t in 0 1 2 3 4 5 6 7; do
    c -d "$db" -qAt -c "SELECT count(*) FROM ecom_serve('store$t', 'viewed: item 1', $ITEMS, 5, explore => 'none')" >/dev/null
  done
done
log=$(c -d ecom -qAt -c "SET citus.log_remote_commands = on" -c "SET client_min_messages = notice" \
        -c "SELECT count(*) FROM ecom_serve('store3', 'viewed: item 1', $ITEMS, 5, explore => 'none')" 2>&1)
grep -q "issuing SELECT .*public.ecom_serve('store3'" <<< "$log" || { echo "not delegated: $log"; exit 1; }
PGBENCH=$("${PG_CONFIG:-pg_config}" --bindir)/pgbench
echo "| layout | clients | tx/s | mean latency ms |"
echo "|---|---|---|---|"
# Citus 11+ syncs its metadata to the workers, so a client may also call
# through a worker: the call runs there when the tenant's shard is local,
# and is delegated to the other worker otherwise
for clients in 1 4; do
  for run in "single node:$P0:single" "Citus, through the coordinator:$P0:ecom" "Citus, through worker 1:$P1:ecom"; do
    IFS=: read -r name port db <<< "$run"
    out=$("$PGBENCH" -h 127.0.0.1 -p "$port" -U postgres -n -f "$SCRIPT" -c "$clients" -j "$clients" -T "$SECS" "$db" 2>&1)
    tps=$(sed -n 's/^tps = \([0-9.]*\).*/\1/p' <<< "$out")
    lat=$(sed -n 's/^latency average = \([0-9.]*\) ms/\1/p' <<< "$out")
    [ -n "$tps" ] || { echo "pgbench failed ($name): $out"; exit 1; }
    echo "| $name | $clients | $tps | $lat |"
  done
done
rm -f "$SCRIPT"
echo
echo "impressions logged: single $(c -d single -qAt -c "SELECT count(*) FROM ecom.impressions"), Citus $(c -d ecom -qAt -c "SELECT count(*) FROM ecom.impressions")"
echo "shards of store0..store7 on worker 1 / worker 2: $(c -d ecom -qAt -c "SELECT string_agg(n::text, ' / ' ORDER BY p) FROM (SELECT nodeport p, count(*) n FROM unnest(ARRAY['store0','store1','store2','store3','store4','store5','store6','store7']) t JOIN pg_dist_shard_placement s ON s.shardid = get_shard_id_for_distribution_column('ecom.requests', t) GROUP BY 1) x")"
