#!/usr/bin/env bash
# Vectorizers (docs/vectorizer.md) on a cluster of their own, pg_ecom
# preloaded so that the background workers run. Numbered checks:
#  1 attach backfills: the worker embeds every existing row, each
#    ecom_embed(text) (within 1e-5: batches pad); the view shows 0 pending and the worker's pid
#  2 inserts (INSERT, COPY, INSERT … ON CONFLICT) and text updates are
#    embedded; an update that leaves the text alone queues nothing
#  3 a rolled-back transaction leaves nothing queued and nothing changed
#  4 a NULL text gives a NULL embedding; an empty and a 1 MB text are embedded
#  5 concurrent sessions rewrite the same rows' texts while the worker runs:
#    every row ends with the embedding of its latest text
#  6 kill -9 of the worker mid-backfill (the server restarts): the backfill
#    resumes and ends with every row right
#  7 an immediate server restart mid-backfill: the same
#  8 a row the table refuses (a CHECK) fails alone: 3 attempts, then it
#    waits (failed = 1, its error kept) while the other rows are embedded;
#    ecom_vectorizer_retry after the fix embeds it
#  9 rows the column refuses all fail alone and are parked (retry embeds
#    them once fixed); an encoder that cannot load counts against no row,
#    the worker backs off and catches up by itself
# 10 the columns it reads cannot be dropped or renamed while attached;
#    DROP TABLE removes the vectorizer and its queue
# 11 a role that may only insert into the table queues its rows (the
#    trigger runs as the extension's owner)
#    (11b) the write runs as the table's owner, security-restricted: the
#    owner's trigger sees the owner as current_user and cannot SET ROLE
# 12 detach: triggers and queue gone, embeddings kept, new rows not queued
# 13 the worker, terminated, is started again by the launcher
# 14 progress of long calls (pg_ecom.progress_interval): NOTICEs from
#    ecom_embed_batch (through the inference worker and in the backend)
#    and ecom_meta_train, each with a closing line; none when it is 0
# 15 a fast shutdown in the middle of a backfill (the inference worker goes
#    first) completes within pg_ctl's wait, and the backfill resumes after
# usage: test/t/012_vectorizer.sh PORT
set -euo pipefail
cd "$(dirname "$0")/../.."
PORT=$1
NAME=vectorizer_test
stop() { scripts/cluster stop $NAME "$PORT"; }
trap stop EXIT
stop
as_pg() { if [ "$(id -u)" = 0 ]; then sudo -u postgres -- "$@"; else "$@"; fi; }
as_pg rm -rf .ecom/clusters/$NAME/data
PG_ECOM_SERVER_OPTS="-c shared_preload_libraries=pg_ecom -c pg_ecom.vectorizer_naptime=200" scripts/cluster start $NAME "$PORT"
q() { scripts/cluster psql $NAME "$PORT" -d postgres -qAt -v ON_ERROR_STOP=1 "$@"; }
n=0
ok() { n=$((n + 1)); echo "ok $n - $*"; }
fail() { echo "not ok - vectorizer: $*"; exit 1; }
# waits up to $2 s (default 120) until the SQL $1 returns t
wait_for() {
  local i
  for i in $(seq 1 $((${2:-120} * 5))); do
    [ "$(q -c "$1" 2>/dev/null || true)" = t ] && return 0
    sleep 0.2
  done
  return 1
}
# every row's embedding is that of its current text (NULL for a NULL text):
# wrong/total rows. Within 1e-5: an embedding encoded in another batch
# differs in the last bits (padding); another text's differs by ~0.1.
right() {
  q -c "SELECT count(*) FILTER (WHERE wrong($2, $3)) || '/' || count(*) FROM $1"
}
settled() { wait_for "SELECT pending = 0 FROM ecom.vectorizer_status WHERE id = $1" "${2:-120}"; }

q -c "CREATE EXTENSION pg_ecom" >/dev/null
q -c "CREATE FUNCTION wrong(e real[], t text) RETURNS boolean LANGUAGE sql AS
      \$\$SELECT CASE WHEN t IS NULL THEN e IS NOT NULL WHEN e IS NULL THEN true
                   ELSE (SELECT max(abs(a - b)) > 1e-5 FROM unnest(e, ecom_embed(t)) u(a, b)) END\$\$"
wait_for "SELECT count(*) = 1 FROM pg_stat_activity WHERE backend_type = 'pg_ecom vectorizer launcher'" 30 \
  || fail "no vectorizer launcher runs"

# -- 1 backfill
q -c "CREATE TABLE products (id int PRIMARY KEY, title text, embedding real[])"
q -c "INSERT INTO products SELECT g, 'product ' || g || ' ' || md5(g::text), NULL FROM generate_series(1, 1000) g"
V=$(q -c "SELECT ecom_vectorizer_attach('products', 'title', 'embedding')")
settled "$V" || fail "the backfill did not finish: $(q -c "SELECT * FROM ecom.vectorizer_status")"
[ "$(right products embedding title)" = "0/1000" ] || fail "after the backfill, wrong rows: $(right products embedding title)"
st=$(q -c "SELECT rows_embedded, failed, worker_pid IS NOT NULL, last_error IS NULL FROM ecom.vectorizer_status WHERE id = $V")
[ "$st" = "1000|0|t|t" ] || fail "the view after the backfill: $st"
ok "attach backfilled 1000 rows, each ecom_embed(title)"

# -- 2 inserts and updates
q -c "INSERT INTO products VALUES (2001, 'red wool socks'), (2002, 'green tea 500 g')"
printf '2003\tleather hiking boots\t\\N\n2004\tstainless steel kettle\t\\N\n' | q -c "COPY products FROM STDIN"
q -c "INSERT INTO products VALUES (2001, 'red wool socks, pack of 3') ON CONFLICT (id) DO UPDATE SET title = EXCLUDED.title"
q -c "UPDATE products SET title = 'product ' || id || ' new' WHERE id <= 50"
settled "$V" 60 || fail "inserts and updates were not embedded"
[ "$(right products embedding title)" = "0/1004" ] || fail "after inserts and updates: $(right products embedding title)"
before=$(q -c "SELECT count(*) FROM ecom.vectorizer_queue")
q -c "UPDATE products SET title = title WHERE id <= 100"
[ "$(q -c "SELECT count(*) FROM ecom.vectorizer_queue")" = "$before" ] || fail "an update that kept the text queued rows"
ok "INSERT, COPY, upsert and text updates embedded; unchanged texts not queued"

# -- 3 rollback
q -c "ALTER SYSTEM SET pg_ecom.vectorizer_naptime = '1h'" -c "SELECT pg_reload_conf()" >/dev/null
sleep 1
q -c "BEGIN" -c "INSERT INTO products VALUES (3001, 'rolled back')" -c "UPDATE products SET title = 'rolled back too' WHERE id = 7" -c "ROLLBACK"
[ "$(q -c "SELECT count(*) FROM ecom.vectorizer_queue")" = 0 ] || fail "a rolled-back transaction left queue entries"
[ "$(right products embedding title)" = "0/1004" ] || fail "a rolled-back transaction changed embeddings"
q -c "ALTER SYSTEM RESET pg_ecom.vectorizer_naptime" -c "SELECT pg_reload_conf()" >/dev/null
q -c "SELECT ecom_vectorizer_wake()" >/dev/null
ok "a rolled-back insert and update queue nothing"

# -- 4 odd texts
q -c "INSERT INTO products VALUES (4001, NULL, '{1,2,3}'), (4002, '', NULL), (4003, repeat('very long text ', 70000), NULL)"
settled "$V" 60 || fail "odd texts were not embedded"
[ "$(right products embedding title)" = "0/1007" ] || fail "odd texts: $(right products embedding title)"
[ "$(q -c "SELECT embedding IS NULL FROM products WHERE id = 4001")" = t ] || fail "a NULL text kept an embedding"
ok "NULL text -> NULL embedding; empty and 1 MB texts embedded"

# -- 5 concurrent rewrites of the same rows
for s in 1 2 3 4; do
  (for i in $(seq 1 40); do
     q -c "UPDATE products SET title = 'session $s round $i ' || id WHERE id BETWEEN 1 AND 20" >/dev/null
   done) &
done
wait
settled "$V" 120 || fail "concurrent rewrites were not embedded"
[ "$(right products embedding title)" = "0/1007" ] || fail "after concurrent rewrites: $(right products embedding title)"
ok "4 sessions x 40 rewrites of 20 rows: every row holds its latest text's embedding"

# -- 6 kill -9 mid-backfill, 7 immediate restart mid-backfill
crash_backfill() {  # $1: table, $2: how to crash
  q -c "CREATE TABLE $1 (id bigint PRIMARY KEY, body varchar(200), emb real[])"
  q -c "INSERT INTO $1 SELECT g, 'crash $1 ' || g || ' ' || md5(g::text || '$1') FROM generate_series(1, 4000) g"
  local v
  v=$(q -c "SELECT ecom_vectorizer_attach('$1', 'body', 'emb', batch_size => 64)")
  wait_for "SELECT rows_embedded >= 300 FROM ecom.vectorizer_status WHERE id = $v" 120 || fail "$1: the backfill did not start"
  if [ "$2" = kill ]; then
    local pid
    pid=$(q -c "SELECT worker_pid FROM ecom.vectorizer_status WHERE id = $v")
    as_pg kill -9 "$pid"
  else
    # pg_ctl restart keeps the server's options (postmaster.opts)
    as_pg "$(pg_config --bindir)/pg_ctl" -D .ecom/clusters/$NAME/data -m immediate -w -t 60 restart \
      -l .ecom/clusters/$NAME/server.log >/dev/null
  fi
  sleep 2
  wait_for "SELECT true" 60 || fail "$1: the server did not come back"
  local mid
  mid=$(q -c "SELECT pending FROM ecom.vectorizer_status WHERE id = $v")
  [ "$mid" -gt 0 ] || fail "$1: the backfill had ended before the crash; nothing tested"
  settled "$v" 180 || fail "$1: the backfill did not resume: $(q -c "SELECT * FROM ecom.vectorizer_status WHERE id = $v")"
  [ "$(right "$1" emb body)" = "0/4000" ] || fail "$1: after the crash: $(right "$1" emb body)"
  echo "$mid"
}
mid=$(crash_backfill crash_kill kill)
ok "kill -9 of the worker with $mid rows pending: the backfill resumed, 4000/4000 right"
mid=$(crash_backfill crash_restart restart)
ok "an immediate restart with $mid rows pending: the backfill resumed, 4000/4000 right"

# -- 8 a row the table refuses
q -c "CREATE TABLE picky (id int PRIMARY KEY, title text, embedding real[], CHECK (id <> 13 OR embedding IS NULL))"
q -c "INSERT INTO picky SELECT g, 'picky item ' || g FROM generate_series(1, 40) g"
P=$(q -c "SELECT ecom_vectorizer_attach('picky', 'title', 'embedding', batch_size => 10)")
wait_for "SELECT pending = 0 AND failed = 1 FROM ecom.vectorizer_status WHERE id = $P" 60 \
  || fail "the refused row: $(q -c "SELECT * FROM ecom.vectorizer_status WHERE id = $P")"
[ "$(q -c "SELECT count(*) FROM picky WHERE id <> 13 AND NOT wrong(embedding, title)")" = 39 ] || fail "the other rows were not embedded"
err=$(q -c "SELECT last_error FROM ecom.vectorizer_status WHERE id = $P")
case "$err" in "row 13: "*picky_check*) ;; *) fail "last_error of the refused row: $err" ;; esac
[ "$(q -c "SELECT attempts || ' ' || key FROM ecom.vectorizer_queue WHERE vectorizer = $P")" = "3 13" ] || fail "the refused row's queue entry"
q -c "ALTER TABLE picky DROP CONSTRAINT picky_check"
[ "$(q -c "SELECT ecom_vectorizer_retry($P)")" = 1 ] || fail "retry did not requeue the row"
settled "$P" 60 || fail "the retried row was not embedded"
[ "$(right picky embedding title)" = "0/40" ] || fail "after retry: $(right picky embedding title)"
ok "a refused row failed alone (3 attempts, error kept), 39 others embedded; retry embedded it"

# -- 9 every row refused by the table (a CHECK on the column): each fails
# alone and is parked after 3 attempts, the error kept; fixed, retried,
# embedded. Then an encoder that cannot embed at all: nothing counts
# against the rows, the worker backs off, and heals by itself.
q -c "CREATE TABLE narrow (id int PRIMARY KEY, title text, embedding real[] CHECK (cardinality(embedding) = 3))"
q -c "INSERT INTO narrow SELECT g, 'narrow item ' || g FROM generate_series(1, 30) g"
W=$(q -c "SELECT ecom_vectorizer_attach('narrow', 'title', 'embedding', batch_size => 10)")
wait_for "SELECT pending = 0 AND failed = 30 FROM ecom.vectorizer_status WHERE id = $W" 90 \
  || fail "a column that refuses all rows: $(q -c "SELECT * FROM ecom.vectorizer_status WHERE id = $W")"
case "$(q -c "SELECT last_error FROM ecom.vectorizer_status WHERE id = $W")" in
  "row "*narrow_embedding_check*) ;; *) fail "last_error of refused rows: $(q -c "SELECT last_error FROM ecom.vectorizer_status WHERE id = $W")" ;; esac
q -c "ALTER TABLE narrow DROP CONSTRAINT narrow_embedding_check"
[ "$(q -c "SELECT ecom_vectorizer_retry($W)")" = 30 ] || fail "retry did not requeue the 30 rows"
settled "$W" 60 || fail "after the fix and retry the rows were not embedded"
[ "$(right narrow embedding title)" = "0/30" ] || fail "narrow after the fix: $(right narrow embedding title)"
q -c "ALTER SYSTEM SET pg_ecom.model_dir = '/nonexistent/pg_ecom_model'" -c "SELECT pg_reload_conf()" >/dev/null
sleep 1
q -c "INSERT INTO narrow SELECT g, 'narrow item ' || g FROM generate_series(31, 40) g"
wait_for "SELECT last_error IS NOT NULL AND retry_at IS NOT NULL AND last_error_at > now() - interval '1 minute' AND last_error NOT LIKE 'row %' FROM ecom.vectorizer_status WHERE id = $W" 90 \
  || fail "an encoder that cannot load: $(q -c "SELECT * FROM ecom.vectorizer_status WHERE id = $W")"
[ "$(q -c "SELECT pending || '/' || failed FROM ecom.vectorizer_status WHERE id = $W")" = "10/0" ] \
  || fail "an encoder that cannot load counted rows as failed: $(q -c "SELECT * FROM ecom.vectorizer_status WHERE id = $W")"
q -c "ALTER SYSTEM RESET pg_ecom.model_dir" -c "SELECT pg_reload_conf()" >/dev/null
settled "$W" 120 || fail "after the encoder came back the worker did not catch up"
[ "$(right narrow embedding title)" = "0/40" ] || fail "narrow after the encoder came back: $(right narrow embedding title)"
ok "rows the column refuses are parked after 3 attempts each and embedded after retry; an encoder that cannot load counts against no row, backs off and heals by itself"

# -- 10 columns it reads, and DROP TABLE
for ddl in "ALTER TABLE products DROP COLUMN title" "ALTER TABLE products DROP COLUMN embedding CASCADE" \
           "ALTER TABLE products RENAME COLUMN title TO name" "ALTER TABLE products RENAME COLUMN id TO pid"; do
  if out=$(q -c "$ddl" 2>&1); then fail "'$ddl' succeeded while attached"; fi
  case "$out" in *"depend"*|*"is read by vectorizer"*) ;; *) fail "'$ddl': $out" ;; esac
done
q -c "DROP TABLE narrow"
[ "$(q -c "SELECT count(*) FROM ecom.vectorizers WHERE id = $W")|$(q -c "SELECT count(*) FROM ecom.vectorizer_queue WHERE vectorizer = $W")" = "0|0" ] \
  || fail "DROP TABLE left the vectorizer behind"
ok "DROP/RENAME COLUMN of what it reads refused with a clear error; DROP TABLE removes the vectorizer"

# -- 11 a writer without rights on ecom's tables
q -c "CREATE ROLE shop_writer LOGIN" -c "GRANT INSERT, UPDATE, SELECT ON products TO shop_writer"
scripts/cluster psql $NAME "$PORT" -d postgres -U shop_writer -qAt -v ON_ERROR_STOP=1 \
  -c "INSERT INTO products VALUES (5001, 'written by a plain role')" || fail "a plain writer could not insert"
settled "$V" 60 || fail "a plain writer's row was not embedded"
[ "$(q -c "SELECT NOT wrong(embedding, title) FROM products WHERE id = 5001")" = t ] || fail "a plain writer's row"
ok "a role that may only write the table queues its rows"

# -- 11b the write runs as the table's owner, in a security-restricted
# operation: the owner's trigger sees the owner as current_user, and one
# that tries to become the superuser fails (that row is parked)
q -c "CREATE ROLE shop_owner" -c "GRANT CREATE ON SCHEMA public TO shop_owner"
q -c "SET ROLE shop_owner" \
  -c "CREATE TABLE owned (id int PRIMARY KEY, title text, emb real[])" \
  -c "CREATE TABLE owned_log (who name, id int)" \
  -c "CREATE FUNCTION owned_audit() RETURNS trigger LANGUAGE plpgsql AS \$\$BEGIN
        IF NEW.id = 7 THEN PERFORM set_config('role', 'postgres', true); END IF;
        IF NEW.id = 3 THEN PERFORM set_config('default_transaction_read_only', 'on', false); END IF;
        INSERT INTO owned_log VALUES (current_user, NEW.id); RETURN NEW; END\$\$" \
  -c "CREATE TRIGGER owned_audit AFTER UPDATE ON owned FOR EACH ROW EXECUTE FUNCTION owned_audit()" \
  -c "CREATE FUNCTION owned_later() RETURNS trigger LANGUAGE plpgsql AS \$\$BEGIN
        INSERT INTO owned_log VALUES (current_user, -NEW.id); RETURN NULL; END\$\$" \
  -c "CREATE CONSTRAINT TRIGGER owned_later AFTER UPDATE ON owned DEFERRABLE INITIALLY DEFERRED
        FOR EACH ROW WHEN (NEW.id = 5) EXECUTE FUNCTION owned_later()" \
  -c "INSERT INTO owned SELECT g, 'owned item ' || g FROM generate_series(1, 10) g" -c "RESET ROLE"
O=$(q -c "SELECT ecom_vectorizer_attach('owned', 'title', 'emb', batch_size => 2)")
wait_for "SELECT pending = 0 AND failed = 2 FROM ecom.vectorizer_status WHERE id = $O" 90 \
  || fail "the owned table: $(q -c "SELECT * FROM ecom.vectorizer_status WHERE id = $O")"
# 8 rows written, each logged by the owner; row 3's setting did not outlive
# its write (later batches wrote); row 7 (SET ROLE) and row 5 (a deferred
# trigger, which must not fire at commit as the superuser) parked
[ "$(q -c "SELECT string_agg(DISTINCT who, ',') || ' ' || count(DISTINCT id) FILTER (WHERE id > 0) || ' ' || count(DISTINCT id) FILTER (WHERE id < 0) FROM owned_log")" = "shop_owner 8 0" ] \
  || fail "the owner's triggers ran as: $(q -c "SELECT who, id FROM owned_log ORDER BY id")"
errs=$(q -c "SELECT string_agg(key || ': ' || last_error, ' | ' ORDER BY key) FROM ecom.vectorizer_queue WHERE vectorizer = $O")
case "$errs" in
  "5: cannot fire deferred trigger within security-restricted operation | 7: cannot set parameter \"role\" within "*) ;;
  *) fail "the parked rows of the owned table: $errs" ;; esac
ok "the write runs as the table's owner: its trigger cannot SET ROLE (row parked), a deferred trigger cannot fire later as the superuser (row parked), its settings do not outlive the write; 8 embedded"

# -- 12 detach
q -c "SELECT ecom_vectorizer_detach($V)" >/dev/null
[ "$(q -c "SELECT count(*) FROM pg_trigger WHERE tgrelid = 'products'::regclass")" = 0 ] || fail "detach left triggers"
[ "$(q -c "SELECT count(*) FROM ecom.vectorizers WHERE id = $V")" = 0 ] || fail "detach left the vectorizer"
q -c "INSERT INTO products VALUES (6001, 'after detach')"
[ "$(q -c "SELECT count(*) FROM ecom.vectorizer_queue WHERE vectorizer = $V")" = 0 ] || fail "a row was queued after detach"
[ "$(q -c "SELECT count(*) FROM products WHERE embedding IS NOT NULL")" = 1007 ] || fail "detach changed embeddings"
err=$(q -c "SELECT ecom_vectorizer_detach($V)" 2>&1 || true)
case "$err" in *"vectorizer $V does not exist"*) ;; *) fail "detaching twice: $err" ;; esac
ok "detach drops its triggers and queue, keeps the embeddings"

# -- 13 the launcher restarts a terminated worker
pid=$(q -c "SELECT worker_pid FROM ecom.vectorizer_status WHERE id = $P")
q -c "SELECT pg_terminate_backend($pid)" >/dev/null
q -c "INSERT INTO picky VALUES (41, 'after the worker was terminated')"
wait_for "SELECT NOT wrong(embedding, title) FROM picky WHERE id = 41" 90 || fail "no worker embedded after termination"
new=$(q -c "SELECT worker_pid FROM ecom.vectorizer_status WHERE id = $P")
[ -n "$new" ] && [ "$new" != "$pid" ] || fail "the worker was not restarted ($pid -> $new)"
ok "a terminated worker is started again by the launcher"

# -- 14 progress NOTICEs
P1="SET pg_ecom.progress_interval = '1ms'"
E="SELECT count(*) FROM ecom_embed_batch(ARRAY(SELECT 'progress check ' || g || ' ' || md5(g::text) FROM generate_series(1, 300) g))"
for mode in worker backend; do
  out=$(q -c "SET pg_ecom.inference = '$mode'" -c "$P1" -c "${E/progress check/progress $mode}" 2>&1)
  grep -Eq "NOTICE:  pg_ecom: ecom_embed_batch: encoding [0-9]+ of 300 texts \([0-9]+ %\), [0-9]+ texts/s" <<< "$out" \
    || fail "no progress from ecom_embed_batch ($mode): $out"
  grep -q "NOTICE:  pg_ecom: ecom_embed_batch: done in" <<< "$out" || fail "no closing line ($mode): $out"
done
out=$(q -c "${E/progress check/no progress}" 2>&1)
if grep -q NOTICE <<< "$out"; then fail "progress NOTICEs with pg_ecom.progress_interval = 0: $out"; fi
q -c "CREATE TABLE mt_events AS SELECT 'shop' || (g % 3) AS tenant, 'viewed: ' || (ARRAY['tea', 'bikes'])[1 + g % 2] AS context,
        (ARRAY['green tea tin', 'bike helmet', 'paint set'])[1 + g % 3] AS item, 'purchase'::text AS behaviour, g % 2 = g % 3 AS label
        FROM generate_series(1, 90) g"
out=$(q -c "$P1" -c "SELECT ecom_meta_train('mt_events', meta_steps => 10) IS NOT NULL" 2>&1)
grep -q "NOTICE:  pg_ecom: ecom_meta_train: training on" <<< "$out" && grep -q "NOTICE:  pg_ecom: ecom_meta_train: done in" <<< "$out" \
  || fail "no progress from ecom_meta_train: $out"
ok "progress NOTICEs from ecom_embed_batch (worker and backend) and ecom_meta_train; none when off"

# -- 15 fast shutdown mid-backfill
q -c "CREATE TABLE shut (id int PRIMARY KEY, body text, emb real[])"
q -c "INSERT INTO shut SELECT g, 'shutdown ' || g || ' ' || md5(g::text || 'shut') FROM generate_series(1, 3000) g"
S=$(q -c "SELECT ecom_vectorizer_attach('shut', 'body', 'emb', batch_size => 256)")
wait_for "SELECT rows_embedded > 0 FROM ecom.vectorizer_status WHERE id = $S" 60 || fail "the shutdown backfill did not start"
as_pg "$(pg_config --bindir)/pg_ctl" -D .ecom/clusters/$NAME/data -m fast -w -t 60 stop >/dev/null \
  || fail "a fast shutdown mid-backfill did not finish within 60 s"
PG_ECOM_SERVER_OPTS="-c shared_preload_libraries=pg_ecom -c pg_ecom.vectorizer_naptime=200" scripts/cluster start $NAME "$PORT"
settled "$S" 120 || fail "the backfill did not resume after a fast shutdown"
[ "$(right shut emb body)" = "0/3000" ] || fail "after the fast shutdown: $(right shut emb body)"
ok "a fast shutdown mid-backfill completes; the backfill resumes and ends right"

log=.ecom/clusters/$NAME/server.log
if as_pg grep -q "terminated by signal 11\|PANIC" "$log" 2>/dev/null; then fail "the server log shows a crash"; fi
echo "vectorizer: $n checks passed"
