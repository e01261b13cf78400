#!/usr/bin/env bash
# pg_ecom over Citus (docs/scaling.md): a coordinator and two workers on
# loopback ports, each with pg_ecom preloaded (its own inference worker).
# Numbered checks:
#   1. CREATE EXTENSION on the coordinator reaches the workers; scores of a
#      single-node install are taken before the layout changes
#   2. ecom_distribute(): heads a reference table, the loop's tables
#      distributed by tenant and co-located, logs written before it kept;
#      a second call does nothing
#   3. the same scores as single node, from the coordinator and from a
#      query pushed down to the workers (EXPLAIN shows one task, on the
#      tenant's worker, running ecom_predict there)
#   4. ecom_serve is delegated to the tenant's worker, which encodes with
#      its own inference worker; ids are unique across nodes
#   5. the loop (serve, feedback, learn, evaluate) for a tenant on each
#      worker, delegated and (in a transaction block) from the
#      coordinator; the learned head is readable on every node; the bulk
#      feedback form refused clearly
#   6. ecom_meta_train reads a distributed source from the coordinator
#   7. ecom_forget removes a tenant's heads and logs on every node
#   8. a worker stopped: the other's tenants keep serving, the stopped
#      one's fail with Citus' connection error; back, nothing was lost
#   9. bad calls: no Citus, a worker call, the tenant form's wrong tenant
# Needs Citus installed (scripts/test builds it from ../shared/third_party).
# usage: test/t/014_citus.sh PORT
set -euo pipefail
cd "$(dirname "$0")/../.."
P0=$1
P1=$(scripts/cluster free-port $((P0 + 1)))
P2=$(scripts/cluster free-port $((P1 + 1)))
NODES="citus_c:$P0 citus_w1:$P1 citus_w2:$P2"
# feedback_window 0 on every node: a delegated call runs with the worker's
# settings, not the caller's
OPTS="-c pg_ecom.feedback_window=0"
. test/citus_nodes.sh
trap 'citus_nodes_stop "$NODES"' EXIT
citus_nodes_stop "$NODES"
citus_nodes_create "$NODES" "$OPTS"
c() { scripts/cluster psql citus_c "$P0" -d ecom -qAt "$@"; }
w1() { scripts/cluster psql citus_w1 "$P1" -d ecom -qAt "$@"; }
w2() { scripts/cluster psql citus_w2 "$P2" -d ecom -qAt "$@"; }
n=0
ok() { n=$((n + 1)); echo "ok $n - $1"; }
fail() { n=$((n + 1)); echo "not ok $n - $1"; exit 1; }
errs() { local out; out=$(c -c "$1" 2>&1) && fail "$3: no error (got: $out)"; grep -q -- "$2" <<< "$out" || fail "$3: got: $out"; }

# 9 (before the cluster exists): without Citus in the database, a clear error
scripts/cluster psql citus_c "$P0" -d postgres -qc "CREATE DATABASE plain" >/dev/null
scripts/cluster psql citus_c "$P0" -d plain -qc "CREATE EXTENSION pg_ecom" >/dev/null
out=$(scripts/cluster psql citus_c "$P0" -d plain -qAt -c "SELECT ecom_distribute()" 2>&1) && fail "ecom_distribute without Citus: no error"
grep -q "needs the citus extension" <<< "$out" || fail "ecom_distribute without Citus: $out"
scripts/cluster psql citus_c "$P0" -d plain -qc "SET client_min_messages = warning" -c "CREATE EXTENSION citus" >/dev/null
out=$(scripts/cluster psql citus_c "$P0" -d plain -qAt -c "SELECT ecom_distribute()" 2>&1) && fail "ecom_distribute without workers: no error"
grep -q "found no Citus worker node" <<< "$out" || fail "ecom_distribute without workers: $out"
ok "ecom_distribute: clear errors without Citus and without workers"

c -c "SELECT citus_set_coordinator_host('127.0.0.1', $P0)" -c "SELECT citus_add_node('127.0.0.1', $P1)" -c "SELECT citus_add_node('127.0.0.1', $P2)" >/dev/null
c -c "CREATE EXTENSION pg_ecom" >/dev/null
[ "$(w1 -c "SELECT extversion FROM pg_extension WHERE extname = 'pg_ecom'")" = "$(c -c "SELECT extversion FROM pg_extension WHERE extname = 'pg_ecom'")" ] \
  || fail "CREATE EXTENSION pg_ecom on the coordinator reaches the workers"
# a single-node install's fixture and scores (test/fixture.sql's events)
c -c "CREATE TABLE events AS
      SELECT 'store' || (g % 3) AS tenant, 'viewed: item ' || (g % 7) AS context,
             'item ' || (g % 5) AS item, 'click'::text AS behaviour, (g % 7) > (g % 5) AS label
        FROM generate_series(1, 120) g" \
  -c "SELECT ecom_meta_train('events', meta_steps => 10) IS NOT NULL" \
  -c "CREATE TABLE support AS SELECT context, item, behaviour, label FROM events WHERE tenant = 'store1'" \
  -c "SELECT ecom_adapt('store1', 'support') IS NOT NULL" >/dev/null
# the tenants used below: one whose shard lands on each worker
pairs_sql="SELECT string_agg(format('%s|%s|%s', t, 'viewed: item ' || (i % 7), 'item ' || (i % 5)), ' ' ORDER BY t, i)
             FROM unnest(ARRAY['store0', 'store1', 'store2']) t, generate_series(1, 6) i"
predict_sql="SELECT string_agg(format('%s:%s', t, ecom_predict(t, 'viewed: item ' || (i % 7), 'item ' || (i % 5))), ' ' ORDER BY t, i)
               FROM unnest(ARRAY['store0', 'store1', 'store2']) t, generate_series(1, 6) i"
single=$(c -c "$predict_sql")
c -c "CREATE TABLE pairs_local AS SELECT split_part(p, '|', 1) AS tenant, split_part(p, '|', 2) AS context, split_part(p, '|', 3) AS item
        FROM unnest(string_to_array(\$\$$(c -c "$pairs_sql")\$\$, ' ')) p" >/dev/null
ranked_sql="SELECT string_agg(format('%s:%s:%s', item, rank, score), ' ' ORDER BY rank)
              FROM ecom_rank('store1', 'viewed: item 3', ARRAY['item 0','item 1','item 2','item 3','item 4'], 5, explore => 'none')"
single_rank=$(c -c "$ranked_sql")
# logs written before the layout changes move with it
pre_ids=$(c -c "SELECT string_agg(impression_id::text, ' ' ORDER BY impression_id)
                  FROM ecom_serve('store_pre', 'viewed: item 1', ARRAY['item 1','item 2','item 3'], 2, explore => 'none')")
c -c "SELECT ecom_feedback(${pre_ids%% *}, 'click')" >/dev/null
ok "CREATE EXTENSION reaches the workers; single-node scores and logs taken"

# 2. the layout
out=$(c -c "SELECT ecom_distribute()")
for part in '"ecom.heads: reference table"' '"ecom.requests: distributed by tenant"' '"ecom.feedback: distributed by tenant"' '"delegated: ecom_serve(' '"delegated: ecom_feedback(bigint,text,boolean,text)"' '"workers": 2'; do
  grep -qF "$part" <<< "$out" || fail "ecom_distribute: $part missing in $out"
done
[ "$(c -c "SELECT string_agg(format('%s=%s', logicalrelid, CASE partmethod WHEN 'n' THEN 'reference' ELSE partmethod::text END), ' ' ORDER BY logicalrelid::text)
             FROM pg_dist_partition WHERE logicalrelid::text LIKE 'ecom.%'")" = "ecom.feedback=h ecom.heads=reference ecom.impressions=h ecom.requests=h" ] \
  || fail "ecom_distribute: the tables' methods: $(c -c "SELECT logicalrelid, partmethod FROM pg_dist_partition")"
[ "$(c -c "SELECT string_agg(format('%s:%s', objid::regprocedure, distribution_argument_index), ' ' ORDER BY 1)
             FROM pg_dist_object WHERE classid = 'pg_proc'::regclass AND objid = 'ecom_feedback(bigint,text,boolean,text)'::regprocedure")" \
   = "ecom_feedback(bigint,text,boolean,text):3" ] || fail "ecom_feedback's tenant form is not routed by its tenant (\$4)"
[ "$(c -c "SELECT count(DISTINCT colocationid) FROM pg_dist_partition WHERE logicalrelid IN ('ecom.requests'::regclass, 'ecom.impressions'::regclass, 'ecom.feedback'::regclass)")" = 1 ] \
  || fail "ecom_distribute: the loop's tables are co-located"
[ "$(c -c "SELECT ecom_distribute()->'done'")" = "[]" ] || fail "ecom_distribute a second time does something"
[ "$(c -c "SELECT string_agg(id::text, ' ' ORDER BY id) FROM ecom.impressions WHERE tenant = 'store_pre'")" = "$pre_ids" ] \
  && [ "$(c -c "SELECT count(*) FROM ecom.feedback WHERE tenant = 'store_pre' AND behaviour = 'click' AND label")" = 1 ] \
  || fail "the logs written before ecom_distribute did not move with it"
ok "ecom_distribute: reference heads, co-located loop tables, earlier logs kept, idempotent"

# 3. the same scores; ecom_predict pushed down to the tenant's worker
worker_of() { c -c "SELECT nodeport FROM pg_dist_shard_placement
                     WHERE shardid = get_shard_id_for_distribution_column('ecom.requests', '$1')"; }
T1='' T2=''
for t in store0 store1 store2 store3 store4 store5 store6 store7; do
  p=$(worker_of "$t")
  [ "$p" = "$P1" ] && [ -z "$T1" ] && T1=$t
  [ "$p" = "$P2" ] && [ -z "$T2" ] && T2=$t
done
[ -n "$T1" ] && [ -n "$T2" ] || fail "no tenant found on each worker ($T1, $T2)"
[ "$(c -c "$predict_sql")" = "$single" ] || fail "ecom_predict on the coordinator differs from single node"
[ "$(c -c "$ranked_sql")" = "$single_rank" ] || fail "ecom_rank on the coordinator differs from single node"
c -c "CREATE TABLE pairs (LIKE pairs_local)" -c "SELECT create_distributed_table('pairs', 'tenant', colocate_with => 'ecom.requests')" \
  -c "INSERT INTO pairs SELECT * FROM pairs_local" >/dev/null
pushed=$(c -c "SELECT string_agg(format('%s:%s', tenant, s), ' ' ORDER BY tenant, ord)
                 FROM (SELECT tenant, ecom_predict(tenant, context, item) s,
                              row_number() OVER (PARTITION BY tenant ORDER BY context, item) ord FROM pairs) x")
expect=$(c -c "SELECT string_agg(format('%s:%s', tenant, s), ' ' ORDER BY tenant, ord)
                 FROM (SELECT tenant, ecom_predict(tenant, context, item) s,
                              row_number() OVER (PARTITION BY tenant ORDER BY context, item) ord FROM pairs_local) x")
[ "$pushed" = "$expect" ] || fail "ecom_predict over a distributed table differs from single node"
plan=$(c -c "EXPLAIN (VERBOSE, COSTS OFF) SELECT ecom_predict(tenant, context, item) FROM pairs WHERE tenant = '$T2'")
grep -q "Task Count: 1" <<< "$plan" && grep -q "port=$P2" <<< "$plan" && grep -q "ecom_predict(" <<< "$plan" \
  || fail "EXPLAIN does not show ecom_predict routed to $T2's worker: $plan"
ok "the same scores as single node; EXPLAIN shows ecom_predict pushed to the tenant's worker ($T2 on port $P2)"

# 4. ecom_serve delegated to the tenant's worker, encoded by its worker
# (texts no other call has encoded); ids unique across the nodes
before=$(w2 -c "SELECT (ecom_worker_stats()->>'texts')::int")
log=$(c -c "SET citus.log_remote_commands = on" -c "SET client_min_messages = notice" \
        -c "SELECT count(*) FROM ecom_serve('$T2', 'viewed: a new kettle', ARRAY['green tea','black tea','a kettle'], 2, seed => 1)" 2>&1)
grep -A1 "issuing SELECT.*ecom_serve('$T2'" <<< "$log" | grep -q "127.0.0.1:$P2 " \
  || fail "ecom_serve was not delegated to $T2's worker: $log"
after=$(w2 -c "SELECT (ecom_worker_stats()->>'texts')::int")
[ "$after" -gt "$before" ] || fail "$T2's worker did not encode the delegated call ($before -> $after)"
c -c "BEGIN" -c "SELECT count(*) FROM ecom_serve('$T2', 'viewed: item 1', ARRAY['item 1','item 2','item 3'], 2, seed => 2)" -c "COMMIT" >/dev/null
c -c "SELECT count(*) FROM ecom_serve('$T1', 'viewed: item 1', ARRAY['item 1','item 2','item 3'], 2, seed => 3)" >/dev/null
[ "$(c -c "SELECT count(*) = count(DISTINCT id) AND count(*) = 8 FROM ecom.impressions")" = t ] || fail "impression ids are not unique across nodes"
ok "ecom_serve delegated to $T2's worker, encoded by that node's inference worker; ids unique"

# 5. the loop for a tenant on each worker
for t in "$T1" "$T2"; do
  for s in 11 12 13; do
    c -c "SELECT count(*) FROM ecom_serve('$t', 'viewed: item $s', ARRAY['item 1','item 2','item 3','item 4'], 2, seed => $s)" >/dev/null
  done
  ids=$(c -c "SELECT string_agg(id::text, ' ' ORDER BY id) FROM ecom.impressions WHERE tenant = '$t' AND rank = 1")
  for id in $ids; do
    [ "$(c -c "SELECT ecom_feedback($id, 'click', true, '$t')")" = t ] || fail "ecom_feedback($id, 'click', true, '$t')"
  done
  [ "$(c -c "SELECT ecom_feedback(${ids%% *}, 'click', true, '$t')")" = f ] || fail "ecom_feedback(…, '$t') a second time is not idempotent"
  [ "$(c -c "SELECT count(*) FROM ecom.impression_outcomes WHERE tenant = '$t' AND click")" = "$(wc -w <<< "$ids")" ] \
    || fail "impression_outcomes: the clicks of $t"
  # the BI views across shards, from the coordinator
  [ "$(c -c "SELECT (SELECT sum(impressions) FROM ecom.tenant_performance) = (SELECT count(*) FROM ecom.impressions)
                AND (SELECT sum(clicks) FROM ecom.tenant_performance WHERE tenant = '$t') = $(wc -w <<< "$ids")")" = t ] \
    || fail "tenant_performance: the impressions of every tenant and the clicks of $t"
  learned=$(c -c "SELECT ecom_learn('$t', activate => 'always')")
  grep -q '"activated": true' <<< "$learned" || fail "ecom_learn('$t'): $learned"
  v=$(c -c "SELECT version FROM ecom.heads WHERE tenant = '$t' AND active")
  for q in c w1 w2; do
    [ "$($q -c "SELECT version FROM ecom.heads WHERE tenant = '$t' AND active")" = "$v" ] || fail "$t's learned head is not readable on $q"
  done
  ev=$(c -c "SELECT (ecom_evaluate('$t', $v)->>'requests')::int")
  [ "$ev" -ge 1 ] || fail "ecom_evaluate('$t'): $ev requests"
  [ "$(c -c "SELECT ecom_learn('$t', activate => 'always')->>'reason'")" != "" ] || fail "ecom_learn('$t') learns again with nothing new"
  # a candidate stored inactive, then replaced by a newer one (which
  # deletes from the reference table what no request names)
  for s in 14 15; do
    c -c "SELECT count(*) FROM ecom_serve('$t', 'viewed: item $s', ARRAY['item 1','item 2','item 3'], 2, seed => $s)" >/dev/null
    out=$(c -c "SELECT ecom_learn('$t', activate => 'never')")
    grep -q '"activated": false' <<< "$out" || fail "ecom_learn('$t', activate => 'never'): $out"
  done
  grep -q '"replaced_versions": \[[0-9]' <<< "$out" || fail "the second candidate of $t did not replace the first: $out"
  [ "$(c -c "SELECT count(*) FROM ecom.heads WHERE tenant = '$t' AND NOT active AND NOT ever_active")" = 1 ] \
    || fail "$t keeps other than one waiting candidate"
done
[ "$(c -c "SELECT count(*) = count(DISTINCT id) FROM ecom.heads")" = t ] || fail "head ids written on different nodes collide"
# the foreign key that keeps a head that served reached every shard
[ "$(c -c "SELECT bool_and(result::int = 1) FROM run_command_on_shards('ecom.requests',
            \$\$SELECT count(*) FROM pg_constraint WHERE conrelid = '%s'::regclass AND contype = 'f'\$\$)")" = t ] \
  || fail "the requests' foreign key to ecom.heads is missing on some shard"
served=$(c -c "SELECT head_id FROM ecom.requests WHERE tenant = '$T2' AND head_tenant = '$T2' LIMIT 1")
errs "DELETE FROM ecom.heads WHERE id = $served" "violates foreign key constraint" "deleting a head that served"
# the form without the tenant, from the coordinator
id=$(c -c "SELECT max(id) FROM ecom.impressions WHERE tenant = '$T1'")
[ "$(c -c "SELECT ecom_feedback($id, 'cart')")" = t ] || fail "ecom_feedback($id, 'cart') from the coordinator"
# in a transaction block Citus does not delegate: the calls run on the
# coordinator, reading and writing the tenant's shards over the network
# (as a pg_cron job's SELECT ecom_learn(tenant) FROM … does)
c -c "SELECT count(*) FROM ecom_serve('$T2', 'viewed: item 5', ARRAY['item 1','item 2','item 3'], 2, seed => 31)" >/dev/null
id=$(c -c "SELECT max(id) FROM ecom.impressions WHERE tenant = '$T2'")
out=$(c -c "BEGIN" -c "SELECT ecom_feedback($id, 'click', true, '$T2')" -c "SELECT ecom_learn(t, activate => 'always')->>'n' FROM (VALUES ('$T2')) v(t)" \
        -c "SELECT (ecom_evaluate('$T2', NULL)->>'requests')::int >= 1" -c "COMMIT")
# (6: the 2 new impressions and the 4 only the inactive candidates learned)
[ "$out" = "$(printf 't\n6\nt')" ] || fail "the loop on the coordinator, in a transaction block: $out"
# the bulk form, from a relation on the coordinator
c -c "CREATE TABLE fb_bulk AS SELECT id AS impression_id, 'cart'::text AS behaviour, true AS label
        FROM ecom.impressions WHERE tenant IN ('$T1', '$T2') AND rank = 2" >/dev/null
errs "SELECT ecom_feedback('fb_bulk'::regclass)" "does not work once ecom_distribute() has distributed" "ecom_feedback(regclass) on Citus"
# the same labels, one call each, delegated
c >/dev/null <<'SQL'
SELECT format('SELECT ecom_feedback(%s, %L, %L::boolean, %L)', b.impression_id, b.behaviour, b.label, i.tenant)
  FROM fb_bulk b JOIN ecom.impressions i ON i.id = b.impression_id \gexec
SQL
[ "$(c -c "SELECT count(*) FROM ecom.feedback f JOIN fb_bulk b ON b.impression_id = f.impression_id AND f.behaviour = 'cart' AND f.label")" = "$(c -c "SELECT count(*) FROM fb_bulk")" ] \
  || fail "ecom_feedback(…, tenant) per row: the cart labels"
ok "the loop for $T1 (port $P1) and $T2 (port $P2): serve, feedback, learn (activated, and candidates replaced), evaluate, delegated and in a transaction block; heads readable on every node, their foreign key on every shard; the bulk form refused clearly"

# 6. ecom_meta_train from a distributed source
c -c "CREATE TABLE events_d (LIKE events)" -c "SELECT create_distributed_table('events_d', 'tenant')" \
  -c "INSERT INTO events_d SELECT * FROM events" >/dev/null
meta=$(c -c "SELECT ecom_meta_train('events_d', meta_steps => 10)")
[ "$(c -c "SELECT count(*) FROM ecom.heads WHERE tenant IS NULL")" = 2 ] || fail "ecom_meta_train from a distributed table: $meta"
ok "ecom_meta_train reads a distributed source from the coordinator"

# 7. forget removes a tenant everywhere
c -c "SELECT ecom_forget('$T1')" >/dev/null
for q in c w1 w2; do
  [ "$($q -c "SELECT (SELECT count(*) FROM ecom.heads WHERE tenant = '$T1') + (SELECT count(*) FROM ecom.requests WHERE tenant = '$T1')
                   + (SELECT count(*) FROM ecom.impressions WHERE tenant = '$T1') + (SELECT count(*) FROM ecom.feedback WHERE tenant = '$T1')")" = 0 ] \
    || fail "ecom_forget('$T1'): rows left as seen from $q"
done
ok "ecom_forget removes $T1's heads and logs on every node"

# 8. a worker stopped
before=$(c -c "SELECT count(*) FROM ecom.impressions")
scripts/cluster stop citus_w2 "$P2"
served=$(c -c "SELECT count(*) FROM ecom_serve('$T1', 'viewed: item 2', ARRAY['item 1','item 2','item 3'], 2, seed => 21)") \
  || fail "with $T2's worker stopped, $T1 cannot serve"
[ "$served" = 2 ] || fail "with a worker stopped: $served rows"
out=$(c -c "SELECT count(*) FROM ecom_serve('$T2', 'viewed: item 2', ARRAY['item 1','item 2','item 3'], 2, seed => 22)" 2>&1) \
  && fail "$T2 served with its worker stopped"
grep -q "connection to the remote node .*$P2 failed" <<< "$out" || fail "$T2 with its worker stopped: $out"
citus_node_start citus_w2 "$P2" "$OPTS"
c -c "SELECT count(*) FROM ecom_serve('$T2', 'viewed: item 2', ARRAY['item 1','item 2','item 3'], 2, seed => 23)" >/dev/null \
  || fail "$T2 cannot serve once its worker is back"
[ "$(c -c "SELECT count(*) FROM ecom.impressions")" = $((before + 4)) ] \
  || fail "impressions after the worker came back: $(c -c "SELECT count(*) FROM ecom.impressions"), want $((before + 4))"
ok "a worker stopped: $T1 serves, $T2 fails with Citus' connection error; back, every impression is there"

# 9. bad calls
errs "SELECT ecom_feedback($(c -c "SELECT max(id) FROM ecom.impressions WHERE tenant = '$T2'"), 'click', true, '$T1')" "there is no impression .* of tenant" \
  "ecom_feedback with another tenant's impression"
out=$(w1 -c "SELECT ecom_distribute()" 2>&1) && fail "ecom_distribute on a worker: no error"
grep -q "runs on the Citus coordinator only" <<< "$out" || fail "ecom_distribute on a worker: $out"
ok "bad calls: another tenant's impression, ecom_distribute on a worker"
echo "citus: $n checks passed (coordinator $P0, workers $P1 and $P2)"
