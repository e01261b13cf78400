#!/usr/bin/env bash
# Learning follows commit order, not time: impressions served in a
# transaction that is still open while ecom_learn runs are learned by a
# later call, exactly once, whether that transaction served before the
# learn (it held its rows uncommitted) or only after it (its served_at,
# the transaction's start, lies before the learn's cursor). And a label
# recorded in a transaction still open makes ecom_learn wait for it
# rather than learn the impression without it, and a label recorded while
# ecom_learn runs waits for it and then finds the impression learned.
# usage: test/t/002_overlap.sh PORT
set -euo pipefail
cd "$(dirname "$0")/../.."
PORT=$1
DB=pg_ecom_overlap
psql() { scripts/cluster psql regress "$PORT" "$@"; }
psql -d postgres -q -c "SET client_min_messages = warning" -c "DROP DATABASE IF EXISTS $DB" -c "CREATE DATABASE $DB"
psql -d "$DB" -q -f test/fixture.sql >/dev/null
A() { psql -d "$DB" -qAt -c "SET pg_ecom.feedback_window = 0" "$@"; }
SERVE="ecom_serve('ov', 'viewed: item 1', ARRAY['item 0','item 1','item 2','item 3'], 2, seed =>"
WORK=$(mktemp -d)
B_PID=
cleanup() { exec 3>&- 2>/dev/null || true; [ -n "$B_PID" ] && kill "$B_PID" 2>/dev/null; rm -rf "$WORK"; }
trap cleanup EXIT

# session B: a psql reading statements from a pipe, one transaction open
start_b() {
  mkfifo "$WORK/b.in"
  scripts/cluster psql regress "$PORT" -d "$DB" -qAt < "$WORK/b.in" > "$WORK/b.out" 2>&1 &
  B_PID=$!
  exec 3>"$WORK/b.in"
}
stop_b() { exec 3>&-; wait "$B_PID"; B_PID=; rm -f "$WORK/b.in"; }
# until B has run what it was sent and waits inside its transaction
b_waits() {
  for _ in $(seq 1 100); do
    [ "$(A -c "SELECT count(*) FROM pg_stat_activity WHERE datname = '$DB' AND state = 'idle in transaction'")" = 1 ] && return 0
    sleep 0.1
  done
  echo "overlap: session B never got to its open transaction: $(cat "$WORK/b.out")"; exit 1
}
learned() { A -c "SELECT CASE WHEN r->>'version' IS NULL THEN 'none' ELSE r->>'n' END FROM ecom_learn('ov', NULL, 'always') r"; }
expect() { [ "$2" = "$3" ] || { echo "overlap: $1: got $2, want $3"; exit 1; }; }

# 1. B serves and stays open; A serves and learns; B commits
start_b
echo "BEGIN; SELECT count(*) FROM $SERVE 1);" >&3
b_waits
A -c "SELECT count(*) FROM $SERVE 2)" >/dev/null
expect "the learn while B is open" "$(learned)" 2
echo "COMMIT;" >&3
stop_b
expect "the learn after B committed (B's impressions)" "$(learned)" 2
expect "the learn after that (nothing new)" "$(learned)" none

# 2. B begins before A's learn but serves only after it
start_b
echo "BEGIN; SELECT now() IS NOT NULL;" >&3
b_waits
A -c "SELECT count(*) FROM $SERVE 3)" >/dev/null
expect "the learn while B is open, before it served" "$(learned)" 2
echo "SELECT count(*) FROM $SERVE 4); COMMIT;" >&3
stop_b
expect "the learn after B served and committed" "$(learned)" 2
expect "the learn after that (nothing new)" "$(learned)" none
served=$(A -c "SELECT count(*) FROM ecom.impressions WHERE tenant = 'ov'")
total=$(A -c "SELECT sum((metrics->>'n')::int) FROM ecom.heads WHERE tenant = 'ov'")
expect "impressions learned, in all" "$total" "$served"

# 3. a label recorded in an open transaction: ecom_learn waits for it
A -c "SELECT count(*) FROM $SERVE 5)" >/dev/null
id=$(A -c "SELECT max(id) FROM ecom.impressions WHERE tenant = 'ov'")
start_b
echo "BEGIN; SELECT ecom_feedback($id, 'click');" >&3
b_waits
waited=$(A -c "SET lock_timeout = '500ms'" -c "SELECT ecom_learn('ov')" 2>&1 || true)
grep -q "lock timeout" <<< "$waited" || { echo "overlap: ecom_learn did not wait for the open feedback: $waited"; exit 1; }
echo "COMMIT;" >&3
stop_b
positives=$(A -c "SELECT ecom_learn('ov', NULL, 'always')->>'positives'")
expect "positives learned once the feedback committed" "$positives" 1
# and now the label is final: changing it is refused
refused=$(A -c "SELECT ecom_feedback($id, 'click', false)" 2>&1 || true)
grep -q "can no longer change" <<< "$refused" || { echo "overlap: a learned label was changed: $refused"; exit 1; }

# 5. late requests are read whole, whatever pg_ecom.learn_max_impressions:
# the cursor's position never moves back, nothing is learned twice
start_b
echo "BEGIN; SELECT count(*) FROM generate_series(11, 13) g, $SERVE g);" >&3
b_waits
A -c "SELECT count(*) FROM $SERVE 14)" >/dev/null
expect "the learn while B is open (3 requests)" "$(learned)" 2
echo "COMMIT;" >&3
stop_b
A -c "SELECT count(*) FROM $SERVE 15)" >/dev/null
small=$(A -c "SET pg_ecom.learn_max_impressions = 2" -c "SELECT (r->>'n') || '/' || (r->>'backlog') FROM ecom_learn('ov', NULL, 'always') r")
expect "a learn limited to 2 impressions, B's 6 late ones waiting" "$small" "6/true"
expect "the learn after that (the request beyond)" "$(learned)" 2
expect "and then (nothing new)" "$(learned)" none
served=$(A -c "SELECT count(*) FROM ecom.impressions WHERE tenant = 'ov'")
total=$(A -c "SELECT sum((metrics->>'n')::int) FROM ecom.heads WHERE tenant = 'ov'")
expect "impressions learned, in all" "$total" "$served"

# 4. and the other way round: a label recorded while ecom_learn runs waits
# for it, then finds the impression learned (the check reads after the wait)
A -c "SELECT count(*) FROM $SERVE 6)" >/dev/null
id=$(A -c "SELECT max(id) FROM ecom.impressions WHERE tenant = 'ov'")
start_b
echo "BEGIN; SET pg_ecom.feedback_window = 0; SELECT ecom_learn('ov', NULL, 'always') IS NOT NULL;" >&3
b_waits
A -c "SELECT ecom_feedback($id, 'click')" > "$WORK/a.out" 2>&1 &
a_pid=$!
sleep 1
kill -0 "$a_pid" 2>/dev/null || { echo "overlap: ecom_feedback did not wait for the running ecom_learn: $(cat "$WORK/a.out")"; exit 1; }
echo "COMMIT;" >&3
stop_b
wait "$a_pid" || true
grep -q "can no longer change" "$WORK/a.out" \
  || { echo "overlap: a label recorded during ecom_learn was taken after the learn, unlearned: $(cat "$WORK/a.out")"; exit 1; }

psql -d postgres -q -c "DROP DATABASE $DB"
echo "overlap: impressions of transactions open during ecom_learn learned once, later ($total of $served); ecom_learn waits for open feedback, feedback for a running ecom_learn; learned labels are final"
