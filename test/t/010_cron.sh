#!/usr/bin/env bash
# The pg_cron recipe of docs/loop.md, with Debian's pg_cron (postgresql-15-cron):
# a job that runs ecom_learn every minute learns a new version of a tenant
# from its impressions and feedback, and a second run with nothing new
# stores none. Takes one to two minutes (pg_cron 1.4 schedules by minute).
# usage: test/t/010_cron.sh PORT
set -euo pipefail
cd "$(dirname "$0")/../.."
PORT=$1
stop() { scripts/cluster stop cron "$PORT"; }
trap stop EXIT
stop
as_pg() { if [ "$(id -u)" = 0 ]; then sudo -u postgres -- "$@"; else "$@"; fi; }
as_pg rm -rf .ecom/clusters/cron/data
scripts/cluster start cron "$PORT"
q() { scripts/cluster psql cron "$PORT" -d postgres -qAt "$@"; }
stop
printf "shared_preload_libraries = 'pg_cron'\ncron.database_name = 'postgres'\n" \
  | as_pg tee -a .ecom/clusters/cron/data/postgresql.conf >/dev/null
scripts/cluster start cron "$PORT"
q -f test/fixture.sql >/dev/null
q -c "CREATE EXTENSION pg_cron" >/dev/null
# a tenant served and clicked
q -c "SELECT count(*) FROM generate_series(1, 12) g, ecom_serve('cron_shop', 'viewed: item ' || g % 3, ARRAY['item 0', 'item 1', 'item 2', 'item 3'], 2)" >/dev/null
q -c "SELECT count(ecom_feedback(id, 'click')) FROM ecom.impressions WHERE rank = 1" >/dev/null
# the recipe (docs/loop.md); the job's own SET makes the
# impressions learnable at once instead of after pg_ecom.feedback_window
q -c "SELECT cron.schedule('pg_ecom_learn_cron_shop', '* * * * *',
        \$\$SET pg_ecom.feedback_window = 0; SELECT ecom_learn('cron_shop', activate => 'always')\$\$)" >/dev/null
runs() { q -c "SELECT count(*) FILTER (WHERE status = 'succeeded') || '/' || count(*) FROM cron.job_run_details"; }
# a run's row appears as 'starting'/'running' before it ends: wait for an end
finished() { q -c "SELECT count(*) FROM cron.job_run_details WHERE status IN ('succeeded', 'failed')"; }
for _ in $(seq 1 150); do
  [ "$(finished)" != 0 ] && break
  sleep 1
done
[ "$(runs)" = "1/1" ] || { echo "cron: the job did not succeed: $(runs); $(q -c "SELECT return_message FROM cron.job_run_details")"; exit 1; }
v=$(q -c "SELECT string_agg(version || ':' || active || ':' || (hyper->>'kind'), ' ') FROM ecom.heads WHERE tenant = 'cron_shop'")
[ "$v" = "1:true:learn" ] || { echo "cron: after the first run the tenant's versions are '$v', want 1:true:learn"; exit 1; }
# the next run finds nothing new: no second version
for _ in $(seq 1 90); do
  [ "$(finished)" = 2 ] && break
  sleep 1
done
[ "$(runs)" = "2/2" ] || { echo "cron: the second run did not succeed: $(runs)"; exit 1; }
n=$(q -c "SELECT count(*) FROM ecom.heads WHERE tenant = 'cron_shop'")
[ "$n" = 1 ] || { echo "cron: a run with nothing new stored a version ($n versions)"; exit 1; }
q -c "SELECT cron.unschedule('pg_ecom_learn_cron_shop')" >/dev/null
echo "cron: pg_cron $(q -c "SELECT extversion FROM pg_extension WHERE extname = 'pg_cron'") ran ecom_learn every minute: one version from 12 requests, none from a run with nothing new"
