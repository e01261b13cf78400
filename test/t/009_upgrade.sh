#!/usr/bin/env bash
# ALTER EXTENSION pg_ecom UPDATE from release 0.1.0: heads made by 0.1.0
# survive with their versions and active flags and score exactly as 0.1.0
# scored them, serve and learn through the loop (ecom_serve, ecom_feedback,
# ecom_evaluate, ecom_learn), tenant names leave the global head's metrics, new writes
# work, and the updated extension has exactly the objects a fresh install
# has (functions with costs and row estimates, columns, indexes,
# constraints, views, what pg_dump keeps).
#
# test/upgrade/heads-0.1.0.sql holds heads and scores made by the
# release-0.1.0 library (make_fixture.sql, run once against a build of
# commit dda9dcc); sql/pg_ecom--0.1.0.sql is that release's install script.
# test/upgrade/loop-0.3.0.sql holds the loop's rows (requests,
# impressions, feedback, learned heads) as release 0.3.0 wrote them
# (make_loop_fixture.sh, run once against a build of commit b98847e): they
# are loaded after updating to 0.3.0, and must pass the update to the
# current release unchanged, every new constraint valid on them.
# usage: test/t/009_upgrade.sh PORT
set -euo pipefail
cd "$(dirname "$0")/../.."
PORT=$1
PG_CONFIG=${PG_CONFIG:-pg_config}
psql() { scripts/cluster psql regress "$PORT" "$@"; }
EXT=$("$PG_CONFIG" --sharedir)/extension
SUDO=; [ "$(id -u)" = 0 ] || SUDO=sudo
# the 0.1.0 install script, so that CREATE EXTENSION … VERSION '0.1.0' works
$SUDO install -m 0644 sql/pg_ecom--0.1.0.sql "$EXT/pg_ecom--0.1.0.sql"
trap '$SUDO rm -f "$EXT/pg_ecom--0.1.0.sql"' EXIT
NEW=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
for db in pg_ecom_upgrade pg_ecom_fresh; do
  psql -d postgres -q -c "SET client_min_messages = warning" -c "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db"
done
U="psql -d pg_ecom_upgrade -qAt"
$U -c "CREATE EXTENSION pg_ecom VERSION '0.1.0'"
$U -f test/upgrade/heads-0.1.0.sql >/dev/null
before=$($U -c "SELECT string_agg(format('%s/%s/%s/%s', coalesce(tenant, '-'), version, active, md5(weights::text)), ' ' ORDER BY tenant NULLS FIRST, version) FROM ecom.heads")
$U -c "SELECT count(*) FROM ecom.heads WHERE metrics ? 'val_tenants' AND jsonb_typeof(metrics->'val_tenants') = 'array'" | grep -qx 1 \
  || { echo "upgrade: the 0.1.0 fixture should hold a global head that names its tenants"; exit 1; }

# the new library with the old SQL objects: a clear ERROR, not a wrong answer
stale=$($U -c "SELECT ecom_predict('store1', 'viewed: item 1', 'item 0', 'click', '{0.2,0.5}')" 2>&1 || true)
grep -q "older than the pg_ecom library" <<< "$stale" \
  || { echo "upgrade: before ALTER EXTENSION UPDATE, scoring should say to run it; got: $stale"; exit 1; }
# the loop's rows as 0.3.0 wrote them
$U -c "ALTER EXTENSION pg_ecom UPDATE TO '0.3.0'"
$U -f test/upgrade/loop-0.3.0.sql >/dev/null
before=$($U -c "SELECT string_agg(format('%s/%s/%s/%s', coalesce(tenant, '-'), version, active, md5(weights::text)), ' ' ORDER BY tenant NULLS FIRST, version) FROM ecom.heads")
loop_rows="SELECT (SELECT md5(string_agg(format('%s', (r.id, r.tenant, r.served_at, r.context, r.items, r.features, r.k, r.behaviour, r.explore, r.seed, r.head_tenant, r.head_version, r.head_id)), ' ' ORDER BY r.id)) FROM ecom.requests r)
                || '/' || (SELECT md5(string_agg(format('%s', i), ' ' ORDER BY i.id)) FROM ecom.impressions i)
                || '/' || (SELECT md5(string_agg(format('%s', f), ' ' ORDER BY f.impression_id, f.behaviour)) FROM ecom.feedback f)
                || '/' || (SELECT count(*) FROM ecom.requests) || '/' || (SELECT count(*) FROM ecom.impressions) || '/' || (SELECT count(*) FROM ecom.feedback)"
loop_before=$($U -c "$loop_rows")
[ "$($U -c "SELECT count(*) > 20 FROM ecom.impressions")" = t ] || { echo "upgrade: the 0.3.0 loop fixture did not load"; exit 1; }
# 0.13.0's objects with this library: 0.14.0 changed the loop's keys, and
# feedback must say to update rather than fail inside
if [ "$NEW" != 0.13.0 ]; then
  $U -c "ALTER EXTENSION pg_ecom UPDATE TO '0.13.0'" >/dev/null
  stale=$($U -c "SELECT ecom_feedback(min(id), 'click') FROM ecom.impressions" 2>&1 || true)
  grep -q "older than the pg_ecom library" <<< "$stale" \
    || { echo "upgrade: on 0.13.0's objects, ecom_feedback should say to run ALTER EXTENSION UPDATE; got: $stale"; exit 1; }
fi
# what the views show of those rows on 0.14.0 (0.15.0 reads feedback per
# impression instead of joining it): the same rows after the update
[ "$NEW" = 0.14.0 ] || $U -c "ALTER EXTENSION pg_ecom UPDATE TO '0.14.0'" >/dev/null
outcomes="SELECT md5(string_agg(format('%s', o), ' ' ORDER BY o.impression_id)) || '/' || count(*) FROM ecom.impression_outcomes o"
performance="SELECT md5(string_agg(format('%s', p), ' ' ORDER BY p.tenant, p.day)) || '/' || count(*) FROM ecom.tenant_performance p"
views_before=$($U -c "$outcomes" -c "$performance")
update_out=$($U -c "ALTER EXTENSION pg_ecom UPDATE" 2>&1)
[ -z "$update_out" ] || { echo "upgrade: ALTER EXTENSION UPDATE said something on rows 0.3.0 wrote: $update_out"; exit 1; }
[ "$($U -c "$loop_rows")" = "$loop_before" ] || { echo "upgrade: the loop's rows changed in the update"; exit 1; }
[ "$($U -c "$outcomes" -c "$performance")" = "$views_before" ] \
  || { echo "upgrade: ecom.impression_outcomes or ecom.tenant_performance show other rows after the update"; exit 1; }
$U -c "SELECT pg_catalog.pg_get_viewdef('ecom.impression_outcomes'::regclass)" | grep -q "LATERAL" \
  || { echo "upgrade: ecom.impression_outcomes is not 0.15.0's after the update"; exit 1; }
[ "$($U -c "SELECT count(*) FROM pg_constraint WHERE connamespace = 'ecom'::regnamespace AND NOT convalidated")" = 0 ] \
  || { echo "upgrade: a new constraint is not valid on the rows 0.3.0 wrote"; exit 1; }
# versions that served or were activated are marked ever active; a
# candidate kept inactive that never served is not
$U -c "SELECT string_agg(format('%s/%s/%s', tenant, version, ever_active::text), ' ' ORDER BY tenant, version) FROM ecom.heads WHERE tenant LIKE 'shop%'" \
  | grep -qx "shop_a/1/true shop_a/2/false shop_b/1/false" || { echo "upgrade: ever_active of 0.3.0's learned heads: $($U -c "SELECT string_agg(format('%s/%s/%s', tenant, version, ever_active), ' ' ORDER BY tenant, version) FROM ecom.heads WHERE tenant LIKE 'shop%'")"; exit 1; }
# and learning goes on from 0.3.0's cursor (a head without a snapshot)
$U -c "SET pg_ecom.feedback_window = 0" -c "SELECT ecom_learn('shop_a')->>'reason'" | grep -q "nothing served since" \
  || { echo "upgrade: ecom_learn after the update relearned what 0.3.0 learned"; exit 1; }
version=$($U -c "SELECT extversion FROM pg_extension WHERE extname = 'pg_ecom'")
[ "$version" = "$NEW" ] || { echo "upgrade: extversion is $version after UPDATE, want $NEW"; exit 1; }
after=$($U -c "SELECT string_agg(format('%s/%s/%s/%s', coalesce(tenant, '-'), version, active, md5(weights::text)), ' ' ORDER BY tenant NULLS FIRST, version) FROM ecom.heads")
[ "$before" = "$after" ] || { echo "upgrade: heads changed: $before -> $after"; exit 1; }
# every score 0.1.0 computed, computed again by the updated extension
diff=$($U -c "SELECT count(*) || ' of ' || (SELECT count(*) FROM upgrade_expected) FROM upgrade_expected
              WHERE abs(ecom_predict(tenant, context, item, behaviour, features) - p) > 1e-12")
[ "${diff%% *}" = 0 ] || { echo "upgrade: $diff scores differ from 0.1.0's"; exit 1; }
# 0.1.0's heads record MiniLM: another encoder (0.10.0) refuses them
other=$($U -c "SET pg_ecom.encoder = 'multilingual-e5-small'" -c "SELECT ecom_predict('store1', 'viewed: item 1', 'item 0', 'click', '{0.2,0.5}')" 2>&1 || true)
grep -q "was trained with the encoder sentence-transformers/all-MiniLM-L6-v2" <<< "$other" \
  || { echo "upgrade: a 0.1.0 head scored with multilingual-e5-small should be an ERROR; got: $other"; exit 1; }
checks=$($U -c "SELECT (SELECT count(*) = count(DISTINCT id) AND count(id) = count(*) FROM ecom.heads),
                       (SELECT count(*) FROM ecom.heads WHERE metrics::text ~ 'store[0-9]'),
                       (SELECT count(*) FROM ecom.heads WHERE active)")
[ "$checks" = "t|0|4" ] || { echo "upgrade: ids unique|heads naming tenants|active heads = $checks, want t|0|4 (global, store1, store2, shop_a)"; exit 1; }
# the updated extension keeps working: a new version, rollback, forget
$U -c "SELECT (ecom_adapt('store1', 'support1')->>'version')::int" | grep -qx 3 || { echo "upgrade: adapt after update"; exit 1; }
$U -c "SELECT ecom_rollback('store1', 2) IS NOT NULL" >/dev/null
$U -c "SELECT ecom_forget('store2')->>'heads'" | grep -qx 1 || { echo "upgrade: forget after update"; exit 1; }
# the loop on heads made by 0.1.0 (no posterior: Thompson draws from their
# prior): serve, feedback, evaluate, learn
$U -c "SELECT count(*) FROM ecom_serve('store1', 'viewed: item 1', ARRAY['item 0','item 1','item 2'], 2, 'click', '{0.2,0.5,0.1,0.1,0.3,0.3}', 'thompson', 1)" | grep -qx 2 \
  || { echo "upgrade: ecom_serve on a 0.1.0 head"; exit 1; }
$U -c "SELECT ecom_feedback(min(id), 'click') FROM ecom.impressions WHERE tenant = 'store1'" | grep -qx t || { echo "upgrade: ecom_feedback"; exit 1; }
$U -c "SET pg_ecom.feedback_window = 0" -c "SELECT (ecom_evaluate('store1', NULL)->>'n')::int" | grep -qx 2 || { echo "upgrade: ecom_evaluate"; exit 1; }
$U -c "SET pg_ecom.feedback_window = 0" -c "SELECT ecom_learn('store1')->>'n'" | grep -qx 2 || { echo "upgrade: ecom_learn"; exit 1; }

# the same objects as a fresh install
psql -d pg_ecom_fresh -qAt -c "CREATE EXTENSION pg_ecom" >/dev/null
if ! diff <(psql -d pg_ecom_fresh -qAt -f test/upgrade/describe.sql) \
          <($U -f test/upgrade/describe.sql) >/tmp/pg_ecom_upgrade.diff; then
  echo "upgrade: the updated extension differs from a fresh install (< fresh, > updated):"
  cat /tmp/pg_ecom_upgrade.diff; exit 1
fi
objects=$(psql -d pg_ecom_fresh -qAt -f test/upgrade/describe.sql | wc -l)

# a vectorized table with one row still queued, for the dump below
$U -c "CREATE TABLE vz_dump (id int PRIMARY KEY, title text, emb real[])" \
   -c "INSERT INTO vz_dump VALUES (1, 'wool socks'), (2, 'green tea'), (3, 'kettle')" \
   -c "SET client_min_messages = warning" -c "SELECT ecom_vectorizer_attach('vz_dump', 'title', 'emb')" \
   -c "SELECT ecom_vectorizer_run()" -c "INSERT INTO vz_dump VALUES (4, 'still queued')" >/dev/null

# pg_dump and restore: heads (ecom.heads is a configuration table) keep
# their ids, the identity sequence goes on after them, scores are the same
psql -d postgres -q -c "SET client_min_messages = warning" -c "DROP DATABASE IF EXISTS pg_ecom_restored" -c "CREATE DATABASE pg_ecom_restored"
"$("$PG_CONFIG" --bindir)/pg_dump" -h 127.0.0.1 -p "$PORT" -U postgres pg_ecom_upgrade \
  | psql -d pg_ecom_restored -q -v ON_ERROR_STOP=1 >/dev/null
R="psql -d pg_ecom_restored -qAt"
heads_sql="SELECT string_agg(format('%s/%s/%s/%s/%s', id, coalesce(tenant, '-'), version, active, md5(weights::text)), ' ' ORDER BY id) FROM ecom.heads"
[ "$($U -c "$heads_sql")" = "$($R -c "$heads_sql")" ] || { echo "upgrade: pg_dump/restore changed the heads"; exit 1; }
# the same scores as the database it was dumped from (whose heads changed
# since 0.1.0: a new version, a rollback, a forget)
scores_sql="SELECT string_agg(ecom_predict(tenant, context, item, behaviour, features)::text, ' ' ORDER BY tenant, context, item, behaviour) FROM upgrade_expected"
[ "$($U -c "$scores_sql")" = "$($R -c "$scores_sql")" ] || { echo "upgrade: pg_dump/restore changed the scores"; exit 1; }
loop_sql="SELECT (SELECT count(*) FROM ecom.requests) || '/' || (SELECT count(*) FROM ecom.impressions) || '/' || (SELECT count(*) FROM ecom.feedback)"
[ "$($U -c "$loop_sql")" = "$($R -c "$loop_sql")" ] || { echo "upgrade: pg_dump/restore lost impressions or feedback"; exit 1; }
$R -c "SELECT (ecom_adapt('store1', 'support1')->>'version')::int > 0" | grep -qx t || { echo "upgrade: adapt after restore"; exit 1; }
# the learning cursor after a restore (other transaction ids): what was
# learned before is not learned again, what is served after is, once
for seed in 1 2; do
  $R -c "SELECT count(*) FROM ecom_serve('shop_a', 'viewed: item 1', ARRAY['item 0','item 1','item 2'], 2, 'click', '{0.2,0.5,0.1,0.1,0.3,0.3}', 'thompson', $seed)" | grep -qx 2 \
    || { echo "upgrade: serve after restore"; exit 1; }
  [ $seed = 2 ] || $R -c "SET pg_ecom.feedback_window = 0" -c "SELECT ecom_learn('shop_a', NULL, 'always') IS NOT NULL" >/dev/null
done
$R -c "SET pg_ecom.feedback_window = 0" -c "SELECT ecom_learn('shop_a', NULL, 'always')->>'n'" | grep -qx 2 \
  || { echo "upgrade: after restore, ecom_learn learned other than the 2 new impressions: $($R -c "SET pg_ecom.feedback_window = 0" -c "SELECT ecom_learn('shop_a', NULL, 'always')")"; exit 1; }
$R -c "SET pg_ecom.feedback_window = 0" -c "SELECT ecom_learn('shop_a', NULL, 'always')->>'reason'" | grep -q "nothing served since" \
  || { echo "upgrade: after restore, ecom_learn learns the same impressions again"; exit 1; }
$R -c "SELECT max(id) = (SELECT last_value FROM ecom.heads_id_seq) AND count(*) = count(DISTINCT id) FROM ecom.heads" | grep -qx t \
  || { echo "upgrade: after restore the identity sequence does not continue after the restored ids"; exit 1; }
# the vectorizer comes back with its queue: the queued row and a new one
# are embedded, the restored embeddings are kept (the triggers are created
# after the data is loaded, so nothing is queued twice)
vz_sql="SELECT string_agg(id || ':' || (emb IS NOT NULL), ' ' ORDER BY id) FROM vz_dump"
[ "$($R -c "$vz_sql")" = "1:true 2:true 3:true 4:false" ] || { echo "upgrade: vectorized rows after restore: $($R -c "$vz_sql")"; exit 1; }
[ "$($R -c "SELECT string_agg(key, ' ' ORDER BY seq) FROM ecom.vectorizer_queue")" = 4 ] \
  || { echo "upgrade: the vectorizer queue after restore: $($R -c "SELECT * FROM ecom.vectorizer_queue")"; exit 1; }
$R -c "INSERT INTO vz_dump VALUES (5, 'after restore')" -c "SELECT ecom_vectorizer_run()" >/dev/null
[ "$($R -c "SELECT count(*) FROM vz_dump WHERE (SELECT max(abs(a - b)) FROM unnest(emb, ecom_embed(title)) u(a, b)) < 1e-5")" = 5 ] \
  || { echo "upgrade: after restore the vectorizer did not embed the queued and the new row"; exit 1; }
psql -d postgres -q -c "DROP DATABASE pg_ecom_restored"
for db in pg_ecom_upgrade pg_ecom_fresh; do psql -d postgres -q -c "DROP DATABASE $db"; done
echo "upgrade: 0.1.0 -> $NEW: $(echo "$after" | wc -w) heads kept, ${diff#* of } scores identical, names scrubbed, $objects catalog entries as a fresh install; the loop works on 0.1.0 heads; pg_dump/restore keeps ids, the sequence, the loop's rows and a vectorizer with its queue"
