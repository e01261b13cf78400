#!/usr/bin/env bash
# Throughput of the loop's writes, with texts cached: pgbench, 4 clients,
# each transaction = ecom_serve of 10 of 20 candidates (explore thompson,
# 256 propensity samples) + ecom_feedback on the first one shown; then the
# table growth per impression and ecom_learn / ecom_evaluate times.
# usage: benches/loop/throughput.sh [SECONDS]   (default 30)
set -euo pipefail
cd "$(dirname "$0")/../.."
SECS=${1:-30}
scripts/setup >/dev/null
PORT=${PG_ECOM_BENCH_PORT:-$(scripts/cluster free-port 26380)}
scripts/cluster start loopbench "$PORT"
trap 'scripts/cluster stop loopbench "$PORT"' EXIT
P="scripts/cluster psql loopbench $PORT -d postgres -qAt"
$P -f benches/loop/serving_fixture.sql >/dev/null
cat > /tmp/pg_ecom_loop_bench.sql <<'SQL'
\set c random(0, 19)
SELECT ecom_feedback(impression_id, 'click') FROM ecom_serve('store' || (:c % 4), 'viewed: product ' || :c, (SELECT items FROM bench_items), 10, 'click', NULL, 'thompson') WHERE rank = 1;
SQL
PGBENCH="$(${PG_CONFIG:-pg_config} --bindir)/pgbench -h 127.0.0.1 -p $PORT -U postgres -n -f /tmp/pg_ecom_loop_bench.sql postgres"
# warm every connection's embedding cache and model, then measure
$PGBENCH -c 4 -j 2 -t 40 >/dev/null
$P -c "TRUNCATE ecom.requests CASCADE"
out=$($PGBENCH -c 4 -j 2 -T "$SECS")
tps=$(sed -n 's/^tps = \([0-9.]*\).*/\1/p' <<< "$out")
lat=$(sed -n 's/^latency average = \([0-9.]*\) ms/\1/p' <<< "$out")
$P -c "VACUUM ANALYZE ecom.requests, ecom.impressions, ecom.feedback"
read -r n bytes <<< "$($P -F ' ' -c "SELECT count(*), pg_total_relation_size('ecom.impressions') + pg_total_relation_size('ecom.requests') + pg_total_relation_size('ecom.feedback') FROM ecom.impressions")"
echo "ecom_serve (10 shown of 20, thompson) + ecom_feedback, 4 clients, ${SECS} s: $tps transactions/s = $(python3 -c "print(round($tps * 10))") impressions/s, latency $lat ms"
echo "growth: $n impressions, $(python3 -c "print(round($bytes / $n))") bytes per impression (requests, impressions, feedback with indexes)"
# learning and evaluation over what was logged (the loop's every-minute
# job), in one warm session: the model loaded and the texts cached
timed=$(scripts/cluster psql loopbench "$PORT" -d postgres -qAt <<'SQL'
SET pg_ecom.feedback_window = 0;
SELECT count(*) FROM ecom_embed_batch((SELECT items FROM bench_items));
\timing on
SET pg_ecom.learn_max_impressions = 1000;
SELECT 'learn1000', ecom_learn('store1', activate => 'never')->>'n';
SELECT 'evaluate1000', ecom_evaluate('store1', NULL)->>'n';
SET pg_ecom.learn_max_impressions = 10000;
SELECT 'learn10000', ecom_learn('store3', activate => 'never')->>'n';
SELECT 'evaluate10000', ecom_evaluate('store3', NULL)->>'n';
SELECT 'learn_if_better10000', ecom_learn('store2')->>'n';
-- with taste directions on the global head (two for click; four tenants
-- are too few for ecom_meta_train to keep any): the posterior's block and
-- the directions of the isotropic part that the events informed
UPDATE ecom.heads SET taste_basis = ARRAY[0, 2, 0, 0, 0.5, 0.5]::real[]
       || (SELECT array_agg(CASE WHEN g IN (1, 386) THEN 1 ELSE 0 END::real ORDER BY g) FROM generate_series(1, 768) g)
 WHERE tenant IS NULL AND active;
SELECT 'basis_learn10000', ecom_learn('store0', activate => 'never')->>'n';
SQL
)
ms() { grep -A1 "^$1|" <<< "$timed" | sed -n 's/^Time: \([0-9.]*\) ms.*/\1/p'; }
echo "ecom_learn, activate never: $(ms learn1000) ms over 1,000 impressions, $(ms learn10000) ms over 10,000; with if_better (held-out evaluation): $(ms learn_if_better10000) ms over 10,000"
echo "ecom_learn with taste directions, activate never: $(ms basis_learn10000) ms over 10,000 impressions"
echo "ecom_evaluate: $(ms evaluate1000) ms over 1,000 impressions, $(ms evaluate10000) ms over 10,000"
