#!/usr/bin/env python3
"""MovieLens-100K (from the pinned recbole wheel) as multi-tenant e-commerce
events, and the SQL that evaluates pg_ecom on them.

Tenants = each movie's first genre. Context = the user's previous N rated
titles, in time order. Item = "title (year) genres". Label = rating >= 4.
Side features, all from events strictly earlier on the global timeline (no
leakage): item's smoothed positive rate, item's log count, user's smoothed
positive rate, user's log count. Popularity baseline = the first of them.

Meta-test tenants get a K-shot support set from their earliest events and a
query set from the events after the first max(K) (identical for every K);
meta-train tenants contribute a random sample of their events.

--protocol users: each user is a tenant instead (MeLU's cold-start setting:
support = the user's K earliest ratings, query = later ones).
--protocol occupation: each user's occupation is a tenant (a store whose
audience is one occupation: 21 tenants; support = the tenant's K earliest
events, query = later ones, as for genres).
--text-only: the head gets no side features (the popularity baseline still
ranks by the item's earlier positive rate).
--titles FILE: only the movies FILE names, with its titles and genre names
(benches/multilingual/ml100k_titles_zh.tsv: a Chinese-titled catalogue);
--zh-context writes the context in Chinese; --encoder NAME sets
pg_ecom.encoder for the whole evaluation.

usage: prepare.py --data DIR --out DIR [--seeds 5] [--ks 8,16,32,64] ...
"""
import argparse
import csv
import os
import random
from collections import defaultdict

from features import side_features

ap = argparse.ArgumentParser()
ap.add_argument("--data", required=True)
ap.add_argument("--out", required=True)
ap.add_argument("--seeds", type=int, default=5)
ap.add_argument("--ks", default="8,16,32,64")
ap.add_argument("--test-tenants", type=int, default=5)
ap.add_argument("--train-events", type=int, default=400, help="sampled per meta-train tenant")
ap.add_argument("--query", type=int, default=300, help="query events per meta-test tenant")
ap.add_argument("--history", type=int, default=5, help="titles in the user context")
ap.add_argument("--min-events", type=int, default=None,
                help="tenants need this many events (default: 400 for genres, max(K) + 40 for users)")
ap.add_argument("--protocol", choices=["genre", "users", "occupation"], default="genre")
ap.add_argument("--tenant-pool", type=int, default=0,
                help="use a fixed random subset of this many eligible tenants (0 = all)")
ap.add_argument("--text-only", action="store_true", help="no side features for the head")
ap.add_argument("--titles", help="TSV of item id -> title (and genre names) to use instead; "
                "only the items it names are kept")
ap.add_argument("--zh-context", action="store_true", help="the context's words in Chinese")
ap.add_argument("--encoder", default="", help="pg_ecom.encoder for the evaluation")
ap.add_argument("--finetuned", default="", metavar="PREFIX",
                help="each seed uses the encoder PREFIX-s<seed>, fine-tuned on that seed's meta-train "
                     "tenants only (run.sh --finetune makes them; their lists: finetune_tenants.csv)")
a = ap.parse_args()
ks = [int(k) for k in a.ks.split(",")]
kmax = max(ks)
if a.min_events is None:
    a.min_events = kmax + 40 if a.protocol == "users" else 400

renamed, genre_names = {}, {}
if a.titles:
    for line in open(a.titles, encoding="utf-8"):
        if line.startswith("#") or not line.strip():
            continue
        cols = line.rstrip("\n").split("\t")
        if cols[0] == "genre":
            genre_names[cols[1]] = cols[2]
        else:
            renamed[cols[0]] = cols[1]
items = {}
for line in list(open(os.path.join(a.data, "ml-100k.item"), encoding="utf-8"))[1:]:
    iid, title, year, genres = line.rstrip("\n").split("\t")
    if a.titles:
        if iid not in renamed:
            continue
        title = renamed[iid]
        shown = " ".join(genre_names.get(g, g) for g in genres.split(" ")) if genres else ""
    else:
        shown = genres
    text = title + (f" ({year})" if year.isdigit() else "") + (f" {shown}" if shown else "")
    items[iid] = (title, text, genres.split(" ")[0] if genres else "unknown")

occupation = {}
for line in list(open(os.path.join(a.data, "ml-100k.user"), encoding="utf-8"))[1:]:
    uid, _age, _gender, occ, _zip = line.rstrip("\n").split("\t")
    occupation[uid] = occ

rows = []
for line in list(open(os.path.join(a.data, "ml-100k.inter")))[1:]:
    u, i, r, t = line.split("\t")
    if i in items:
        rows.append((int(float(t)), u, i, float(r) >= 4.0))
rows.sort()

# features and contexts from strictly earlier events
item_n, item_p, user_n, user_p = defaultdict(int), defaultdict(int), defaultdict(int), defaultdict(int)
history = defaultdict(list)
events = []
i = 0
while i < len(rows):
    j = i
    while j < len(rows) and rows[j][0] == rows[i][0]:
        j += 1
    batch = rows[i:j]  # same timestamp: none sees the others
    for ts, u, it, y in batch:
        ctx = history[u][-a.history:]
        if a.zh_context:
            context = "最近评分：" + "；".join(ctx) if ctx else "新用户，尚未评分"
        else:
            context = "recently rated: " + "; ".join(ctx) if ctx else "new user, nothing rated yet"
        f = side_features(item_n[it], item_p[it], user_n[u], user_p[u])
        events.append((items[it][2], u, ts, context, items[it][1], y, f))
    for ts, u, it, y in batch:
        item_n[it] += 1
        item_p[it] += y
        user_n[u] += 1
        user_p[u] += y
        history[u].append(items[it][0])
    i = j

def tenant_of(e):
    if a.protocol == "genre":
        return e[0]
    if a.protocol == "users":
        return "user " + e[1]
    return occupation[e[1]]


by_tenant = defaultdict(list)
for e in events:
    by_tenant[tenant_of(e)].append(e)
tenants = sorted(t for t, ev in by_tenant.items() if len(ev) >= a.min_events)
if a.tenant_pool and len(tenants) > a.tenant_pool:
    tenants = sorted(random.Random(777).sample(tenants, a.tenant_pool))

os.makedirs(a.out, exist_ok=True)
keep = {}
rng = random.Random(12345)
for t in tenants:
    ev = by_tenant[t]  # time order
    for n, e in enumerate(ev[: kmax + a.query]):
        keep[id(e)] = [e, n + 1, True, False]
    for e in rng.sample(ev, min(a.train_events, len(ev))):
        keep.setdefault(id(e), [e, 0, False, False])[3] = True
        if keep[id(e)][1] == 0:
            keep[id(e)][1] = ev.index(e) + 1
with open(os.path.join(a.out, "events.csv"), "w", newline="") as f:
    w = csv.writer(f)
    w.writerow(["tenant", "usr", "ts", "trank", "context", "item", "label", "features", "pop", "early", "sampled"])
    for e, trank, early, sampled in keep.values():
        _, u, ts, context, item, y, feats = e
        t = tenant_of(e)
        head_feats = [] if a.text_only else feats
        w.writerow([t, u, ts, trank, context, item, "t" if y else "f",
                    "{" + ",".join(f"{x:.5f}" for x in head_feats) + "}", f"{feats[0]:.5f}",
                    "t" if early else "f", "t" if sampled else "f"])

q = []
emit = q.append
emit("\\set ON_ERROR_STOP on")
emit("SET pg_ecom.embedding_cache_mb = 256;")
emit(f"SET pg_ecom.encoder = '{a.encoder}';")
emit("CREATE TEMP TABLE ev (tenant text, usr int, ts bigint, trank int, context text, item text, label boolean, features real[], pop real, early boolean, sampled boolean);")
emit(f"\\copy ev FROM '{os.path.abspath(os.path.join(a.out, 'events.csv'))}' WITH (FORMAT csv, HEADER true)")
emit("CREATE TEMP TABLE scores (seed int, k int, tenant text, method text, label boolean, score float8);")
emit("CREATE TEMP TABLE adapt_ms (seed int, k int, method text, ms float8);")
ENCODE_ALL = "SELECT count(*) AS texts FROM ecom_embed_batch(ARRAY(SELECT DISTINCT context FROM ev UNION SELECT DISTINCT item FROM ev)) WHERE embedding IS NOT NULL;"
if not a.finetuned:
    emit("\\echo encoding every text once (the per-backend cache serves the rest)")
    emit(ENCODE_ALL)
finetune_tenants = []
for seed in range(1, a.seeds + 1):
    r = random.Random(seed)
    test = sorted(r.sample(tenants, a.test_tenants))
    train = [t for t in tenants if t not in test]
    lst = ",".join("'" + t.replace("'", "''") + "'" for t in train)
    # psql's \echo reads quotes: "Children's" would open a string
    emit(f"\\echo 'seed {seed}: meta-test tenants {', '.join(test).replace(chr(39), chr(39) * 2)}'")
    if a.finetuned:
        # this seed's encoder saw only this seed's meta-train tenants
        emit(f"SET pg_ecom.encoder = '{a.finetuned}-s{seed}';")
        emit(ENCODE_ALL)
        finetune_tenants += [(seed, t) for t in train]
    emit("DROP TABLE IF EXISTS train_src; DELETE FROM ecom.heads;")
    emit(f"CREATE TEMP TABLE train_src AS SELECT tenant, context, item, 'purchase'::text AS behaviour, label, features, ts FROM ev WHERE sampled AND tenant IN ({lst});")

    def query_scores(method, k, t, tenant_name):
        tq = t.replace("'", "''")
        emit(f"INSERT INTO scores SELECT {seed}, {k}, '{tq}', '{method}', label, "
             f"ecom_predict('{tenant_name}', context, item, 'purchase', features) "
             f"FROM ev WHERE early AND tenant = '{tq}' AND trank > {kmax} AND trank <= {kmax + a.query};")

    def support(t, k):
        tq = t.replace("'", "''")
        emit("DROP VIEW IF EXISTS sup;")
        emit(f"CREATE TEMP VIEW sup AS SELECT context, item, 'purchase'::text AS behaviour, label, features FROM ev WHERE early AND tenant = '{tq}' AND trank <= {k};")

    def adapt_and_score(method, t, k, options):
        """Adapts a tenant of its own for (method, t, k, seed) on `sup`, then
        scores the query set with it; the latency of ours is recorded."""
        name = f"{method[0]}|{t}|{k}|{seed}".replace("'", "''")
        args = f"'{name}', 'sup'" + (f", {options}" if options else "")
        emit(f"INSERT INTO adapt_ms SELECT {seed}, {k}, '{method}', (r->>'ms')::float8 FROM ecom_adapt({args}) r;")
        query_scores(method, k, t, name)

    # (b) pooled head, no meta-learning; (c) scratch; (d) fine-tuned pooled head
    emit(f"SELECT ecom_meta_train('train_src', inner_steps => 0, seed => {seed}) IS NOT NULL AS pooled_trained;")
    for t in test:
        query_scores("b_global", 0, t, f"__unknown_{seed}")
        for k in ks:
            support(t, k)
            adapt_and_score("c_scratch", t, k, "steps => 100, lr => 0.5, start => 'scratch', method => 'full'")
            adapt_and_score("d_finetune", t, k, "start => 'global', method => 'full'")
    # (e) meta-learned initialisation + safeguarded adaptation
    emit(f"SELECT ecom_meta_train('train_src', seed => {seed}) - 'val_tenants' AS meta_trained;")
    for t in test:
        query_scores("e0_meta_noadapt", 0, t, f"__unknown_{seed}")
        for k in ks:
            support(t, k)
            adapt_and_score("e_meta_adapt", t, k, None)
    # (a) popularity: the item's positive rate in earlier events
    for t in test:
        tq = t.replace("'", "''")
        emit(f"INSERT INTO scores SELECT {seed}, 0, '{tq}', 'a_popularity', label, pop FROM ev WHERE early AND tenant = '{tq}' AND trank > {kmax} AND trank <= {kmax + a.query};")

emit("""
CREATE TEMP TABLE auc AS
SELECT seed, k, tenant, method,
       (sum(r) FILTER (WHERE label) - count(*) FILTER (WHERE label) * (count(*) FILTER (WHERE label) + 1) / 2.0)
       / nullif(count(*) FILTER (WHERE label) * count(*) FILTER (WHERE NOT label), 0) AS auc
  FROM (SELECT *, rank() OVER w + (count(*) OVER (PARTITION BY seed, k, tenant, method, score) - 1) / 2.0 AS r
          FROM scores WINDOW w AS (PARTITION BY seed, k, tenant, method ORDER BY score)) x
 GROUP BY 1, 2, 3, 4;""")
emit(f"\\copy (SELECT seed, k, tenant, method, auc FROM auc ORDER BY 1, 2, 3, 4) TO '{os.path.abspath(os.path.join(a.out, 'auc.csv'))}' WITH (FORMAT csv, HEADER true)")
emit(f"\\copy (SELECT * FROM adapt_ms) TO '{os.path.abspath(os.path.join(a.out, 'adapt_ms.csv'))}' WITH (FORMAT csv, HEADER true)")
if a.finetuned:
    with open(os.path.join(a.out, "finetune_tenants.csv"), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["seed", "tenant"])
        w.writerows(finetune_tenants)
with open(os.path.join(a.out, "eval.sql"), "w") as f:
    f.write("\n".join(q) + "\n")
with open(os.path.join(a.out, "protocol.txt"), "w") as f:
    f.write(f"{ {'genre': 'genres', 'users': 'users', 'occupation': 'occupations'}[a.protocol]} as tenants, "
            f"{'text only (no side features)' if a.text_only else 'text + 4 side features'}; "
            f"{len(tenants)} tenants with >= {a.min_events} events, {a.test_tenants} meta-test tenants per seed, "
            f"{a.train_events} sampled events per meta-train tenant, query = up to {a.query} events after the first {kmax}"
            + (f"; the {len(items)} movies of {os.path.basename(a.titles)}, titled as it titles them" if a.titles else "")
            + ("; the context in Chinese" if a.zh_context else "")
            + (f"; encoder fine-tuned per seed on its meta-train tenants ({a.finetuned}-s<seed>)" if a.finetuned
               else f"; encoder {a.encoder or 'all-MiniLM-L6-v2'}") + "\n")
print(f"{len(keep)} events from {len(tenants)} tenants: {', '.join(tenants)}")
